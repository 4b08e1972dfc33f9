"""Integration: `dfewctl folds make/show/list/delete` on a real database.
The split holds exactly the usable, single-labelled clips, each in one fold;
fold sizes and per-fold class counts differ by at most one; the same seed
gives the same split; --by-movie keeps each movie in one fold; the
fold_summary and fold_clips views agree."""
import collections
import os
import random

from dfewtest import HomeTest, main
from labeltest import add_clips, add_movies, init_db, random_counts, write_wide


class FoldsTest(HomeTest):
    def setUp(self):
        super().setUp()
        init_db(self.home)
        rng = random.Random(5)
        self.movies = add_movies(self.home, 12)
        specs = []
        for i in range(330):
            # uneven movies: a few big ones, many small
            m = self.movies[min(int(rng.random() ** 2 * 12), 11)]
            specs.append({'movie': m, 'duration': 1 + i % 6,
                          'state': 'unusable' if i % 23 == 0 else 'usable'})
        self.ids = add_clips(self.home, specs)
        rows = [(c, random_counts(rng, 10, 0.8)) for c in self.ids]
        f = os.path.join(self.home.dir, 'wide.csv')
        write_wide(f, rows)
        self.home.ctl('labels', 'import', f)
        self.eligible = {r['clip_id']: r['label'] for r in self.home.query(
            "SELECT clip_id, label FROM clip_labels WHERE state = 'usable' AND label IS NOT NULL")}
        self.movie_of = {r['id']: r['movie_id'] for r in self.home.query('SELECT id, movie_id FROM clips')}

    def members(self, split):
        return {r['clip_id']: (r['fold'], r['label']) for r in self.home.query(
            'SELECT clip_id, fold, label FROM fold_clips WHERE split = ?', split)}

    def balance(self, m, k):
        sizes = collections.Counter(f for f, _ in m.values())
        per = collections.defaultdict(collections.Counter)
        for f, lab in m.values():
            per[lab][f] += 1
        spread = max(max(per[lab][f] for f in range(1, k + 1)) - min(per[lab][f] for f in range(1, k + 1))
                     for lab in per)
        return sorted(sizes[f] for f in range(1, k + 1)), spread

    def test_stratified_folds(self):
        n_all = self.home.scalar('SELECT count(*) FROM clips')
        self.assertGreater(n_all, len(self.eligible))  # unusable and ambiguous clips exist and stay out
        out = self.home.ctl_json('folds', 'make', '--k', '5', '--seed', '7')
        self.assertEqual((out['split']['name'], out['split']['k'], out['split']['seed'], out['split']['clips']),
                         ('k5-seed7', 5, 7, len(self.eligible)))
        m = self.members('k5-seed7')
        self.assertEqual(set(m), set(self.eligible))  # every eligible clip, each once (primary key)
        self.assertEqual({c: lab for c, (_, lab) in m.items()}, self.eligible)
        sizes, spread = self.balance(m, 5)
        print('k=5, %d eligible of %d clips: fold sizes %s, largest per-class difference %d' % (
            len(self.eligible), n_all, sizes, spread))
        self.assertLessEqual(sizes[-1] - sizes[0], 1)
        self.assertLessEqual(spread, 1)
        # the view for sqlite3 users agrees, and so does folds show
        summ = self.home.query("SELECT fold, clips FROM fold_summary WHERE split = 'k5-seed7' ORDER BY fold")
        self.assertEqual(sorted(r['clips'] for r in summ), sizes)
        shown = self.home.ctl_json('folds', 'show')
        self.assertEqual([f['fold'] for f in shown['folds']], [1, 2, 3, 4, 5])
        self.assertEqual(sum(f['clips'] for f in shown['folds']), len(self.eligible))
        text = self.home.ctl('folds', 'show', 'k5-seed7').stdout.splitlines()
        self.assertIn('split k5-seed7: 5 folds, %d clips, seed 7, stratified by label' % len(self.eligible), text[0])
        self.assertEqual([t.split()[0] for t in text[2:]], ['fd1', 'fd2', 'fd3', 'fd4', 'fd5', 'total'])
        # the same seed again gives the same split; another seed another one
        self.home.ctl('folds', 'make', '--k', '5', '--seed', '7', '--name', 'again')
        self.assertEqual(self.members('again'), m)
        self.home.ctl('folds', 'make', '--k', '5', '--seed', '8')
        self.assertNotEqual(self.members('k5-seed8'), m)
        # k = 10 holds too
        self.home.ctl('folds', 'make', '--k', '10', '--seed', '7')
        sizes10, spread10 = self.balance(self.members('k10-seed7'), 10)
        self.assertLessEqual(sizes10[-1] - sizes10[0], 1)
        self.assertLessEqual(spread10, 1)
        names = [s['name'] for s in self.home.ctl_json('folds', 'list')]
        self.assertEqual(names, ['k5-seed7', 'again', 'k5-seed8', 'k10-seed7'])

    def test_by_movie(self):
        self.home.ctl('folds', 'make', '--k', '5', '--by-movie', '--seed', '3')
        m = self.members('k5-seed3-by-movie')
        self.assertEqual(set(m), set(self.eligible))
        folds_of_movie = collections.defaultdict(set)
        for clip, (f, _) in m.items():
            folds_of_movie[self.movie_of[clip]].add(f)
        self.assertTrue(all(len(fs) == 1 for fs in folds_of_movie.values()), folds_of_movie)
        self.assertEqual(len({next(iter(fs)) for fs in folds_of_movie.values()}), 5)  # no empty fold
        sizes, spread = self.balance(m, 5)
        per_movie = sorted(collections.Counter(self.movie_of[c] for c in m).values(), reverse=True)
        print('by movie: %d clips in %d movies (largest %s): fold sizes %s, largest per-class difference %d' % (
            len(m), len(per_movie), per_movie[:3], sizes, spread))
        summ = self.home.query("SELECT sum(movies) AS movies FROM fold_summary WHERE split = 'k5-seed3-by-movie'")
        self.assertEqual(summ[0]['movies'], len(per_movie))  # each movie counted in one fold only
        self.assertIn('each movie in one fold', self.home.ctl('folds', 'show').stdout)
        # deterministic too
        self.home.ctl('folds', 'make', '--k', '5', '--by-movie', '--seed', '3', '--name', 'again')
        self.assertEqual(self.members('again'), m)

    def test_errors_and_replace(self):
        self.home.ctl('folds', 'make', '--k', '3')
        r = self.home.ctl('folds', 'make', '--k', '3', check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("a split named 'k3-seed1' exists", r.stderr)
        first = self.members('k3-seed1')
        self.home.ctl('folds', 'make', '--k', '4', '--name', 'k3-seed1', '--replace')
        self.assertEqual(self.home.scalar("SELECT k FROM splits WHERE name = 'k3-seed1'"), 4)
        self.assertNotEqual(self.members('k3-seed1'), first)
        self.assertEqual(self.home.scalar('SELECT count(*) FROM splits'), 1)
        r = self.home.ctl('folds', 'make', '--k', '13', '--by-movie', check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('fewer than 13 movies', r.stderr)
        for bad in (['--k', '1'], ['--k', 'x'], ['--seed', '-1'], ['extra']):
            self.assertEqual(self.home.ctl('folds', 'make', *bad, check=False).returncode, 2)
        self.assertEqual(self.home.ctl('folds', 'bogus', check=False).returncode, 2)
        r = self.home.ctl('folds', 'show', 'nope', check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no split named 'nope'", r.stderr)
        self.assertEqual(self.home.ctl_json('folds', 'delete', 'k3-seed1'), {'deleted': 'k3-seed1'})
        self.assertEqual(self.home.scalar('SELECT count(*) FROM fold_members'), 0)
        r = self.home.ctl('folds', 'show', check=False)
        self.assertIn('no folds yet', r.stderr)
        # too few eligible clips
        con = self.home.db()
        with con:
            con.execute("UPDATE clips SET state = 'unusable' WHERE id NOT IN (SELECT clip_id FROM clip_labels "
                        "WHERE label IS NOT NULL AND state = 'usable' LIMIT 3)")
        con.close()
        r = self.home.ctl('folds', 'make', '--k', '5', check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('3 usable single-labelled clips; 5 folds need at least 5', r.stderr)


if __name__ == '__main__':
    main()
