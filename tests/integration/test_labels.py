"""Integration: `dfewctl labels import` (long and wide CSV or .xlsx, headers
in any column order, one transaction,
every kind of bad file rejected with its line numbers and the database left
unchanged, re-import changes nothing), the clip_labels view and the
single-label rule with the configured r, `labels kappa` against statsmodels,
and `report` / `report table2` on a real database."""
import csv
import io
import json
import os
import random

from dfewtest import HomeTest, main
from labeltest import (EMOTIONS, add_clips, add_movies, dump, init_db, random_counts, statsmodels_kappa,
                       write_text, write_wide)


class LabelsTest(HomeTest):
    def setUp(self):
        super().setUp()
        init_db(self.home)
        self.movie, = add_movies(self.home, 1)
        self.clips = add_clips(self.home, [{'movie': self.movie, 'duration': d} for d in (1, 3, 6, 2.5)])
        con = self.home.db()
        with con:
            con.execute("UPDATE clips SET name = '00042' WHERE id = ?", (self.clips[3],))
        con.close()

    def path(self, name):
        return os.path.join(self.home.dir, name)

    def long_file(self, name='votes.csv'):
        a, b, c, d = self.clips
        lines = ['clip,annotator,emotion']
        # clip a: 7 happy of 10 -> happy; clip b: 6 sad of 10 -> ambiguous
        lines += ['%d,ann%d,%s' % (a, i, 'happy' if i < 7 else 'fear') for i in range(10)]
        lines += ['%d,ann%d,%s' % (b, i, 'Sad' if i < 6 else '4') for i in range(10)]
        # clip c: 10 votes, 9 for 7 (fear) given as numbers; the DFEW name for d
        lines += ['%d,ann%d,%s' % (c, i, '7' if i else 'surprised') for i in range(10)]
        lines += ['00042,"Doe, Jane",disgusted', '00042,ann1,disgust']
        write_text(self.path(name), '\n'.join(lines) + '\n')
        return self.path(name)

    def test_long_import_view_and_reimport(self):
        f = self.long_file()
        out = self.home.ctl_json('labels', 'import', f)
        self.assertEqual((out['format'], out['rows'], out['added'], out['unchanged']), ('long', 32, 32, 0))
        rows = {r['clip_id']: r for r in self.home.query('SELECT * FROM clip_labels')}
        a, b, c, d = self.clips
        self.assertEqual([rows[a][e] for e in EMOTIONS], [7, 0, 0, 0, 0, 0, 3])
        self.assertEqual((rows[a]['votes'], rows[a]['label'], rows[a]['label_name']), (10, 1, 'happy'))
        self.assertEqual((rows[b]['sad'], rows[b]['angry'], rows[b]['label'], rows[b]['label_name']),
                         (6, 4, None, 'ambiguous'))
        self.assertEqual((rows[c]['fear'], rows[c]['surprise'], rows[c]['label']), (9, 1, 7))
        self.assertEqual((rows[d]['name'], rows[d]['disgust'], rows[d]['votes'], rows[d]['label_name']),
                         ('00042', 2, 2, 'ambiguous'))
        self.assertEqual(self.home.scalar("SELECT annotator FROM votes WHERE clip_id = ? AND annotator LIKE 'Doe%'",
                                          d), 'Doe, Jane')
        shown = self.home.ctl_json('labels', 'show', '--label', 'happy')
        self.assertEqual([r['clip'] for r in shown], [a])
        self.assertEqual(len(self.home.ctl_json('labels', 'show', '00042', str(b))), 2)
        table = self.home.ctl('labels', 'show').stdout.splitlines()
        self.assertEqual(table[0].split(), ['clip', 'name', 'happy', 'sad', 'neutral', 'angry', 'surprise', 'disgust',
                                            'fear', 'votes', 'label'])
        self.assertEqual(len(table), 5)
        # the same file again: nothing changes, byte for byte
        before = dump(self.home)
        again = self.home.ctl_json('labels', 'import', f)
        self.assertEqual((again['added'], again['replaced'], again['unchanged']), (0, 0, 32))
        self.assertIn('nothing changed', self.home.ctl('labels', 'import', f).stdout)
        self.assertEqual(dump(self.home), before)

    def test_bad_files_are_rejected_whole(self):
        a, b, c, d = self.clips
        self.home.ctl('labels', 'import', self.long_file())
        # a clip named like another clip's id in 5 digits (zeros dropped by a spreadsheet?)
        con = self.home.db()
        with con:
            con.execute("UPDATE clips SET name = printf('%05d', ?) WHERE id = ?", (a, b))
        con.close()
        ok = '%d,new1,happy\n' % c  # a good line: must not be stored when the file is rejected
        eleven = ''.join('%d,x%d,sad\n' % (d, i) for i in range(9))  # d has 2 votes: 2 + 9 = 11 > 10
        cases = [
            ('unknown clip', 'clip,annotator,emotion\n' + ok + '999,a,happy\n', 3, "no clip '999'"),
            ('clip by unknown name', 'clip,annotator,emotion\n' + ok + '77777,a,happy\n', 3, "no clip '77777'"),
            ('id or zero-less name', 'clip,annotator,emotion\n' + ok + '%d,a,happy\n' % a, 3,
             "'%d' could be clip id %d or the DFEW video %05d (clip %d); write the name with its 5 digits, or "
             "id:%d for the id" % (a, a, a, b, a)),
            ('unknown emotion', 'clip,annotator,emotion\n' + ok + '%d,new2,contempt\n' % c, 3,
             "unknown emotion 'contempt'"),
            ('emotion out of range', 'clip,annotator,emotion\n%d,new2,8\n' % c, 2, "unknown emotion '8'"),
            ('annotator twice in the file', 'clip,annotator,emotion\n' + ok + '%d,new1,sad\n' % c, 3,
             "annotator 'new1' votes twice for clip %d (also on line 2)" % c),
            ('same vote twice in the file', 'clip,annotator,emotion\n' + ok + ok, 3, 'votes twice'),
            ('annotator already voted otherwise', 'clip,annotator,emotion\nid:%d,ann0,sad\n' % a, 2,
             "annotator 'ann0' already voted happy for clip id:%d" % a),
            ('more votes than annotators', 'clip,annotator,emotion\n' + eleven, 10,
             'would have 11 votes, more than annotators_per_clip = 10'),
            ('reserved annotator name', 'clip,annotator,emotion\n%d,#3,sad\n' % c, 2, 'reserved'),
            ('empty annotator', 'clip,annotator,emotion\n%d,,sad\n' % c, 2, 'the annotator is empty'),
            ('missing field', 'clip,annotator,emotion\n' + ok + '%d,new3\n' % c, 3, 'expected 3 fields'),
            ('bad header', 'clip;annotator;emotion\n' + ok, 1, 'the first line must be a header'),
            ('empty file', '', 1, 'the file is empty'),
            ('open quote', 'clip,annotator,emotion\n' + ok + '%d,"new4,sad\n' % c, 3, 'quoted field is not closed'),
            ('wide: too many votes', 'clip,' + ','.join(EMOTIONS) + '\n%d,5,5,1,0,0,0,0\n' % b, 2,
             'has 11 votes, more than annotators_per_clip = 10'),
            ('wide: negative count', 'clip,' + ','.join(EMOTIONS) + '\n%d,5,-1,1,0,0,0,0\n' % b, 2,
             "the sad count '-1' is not a whole number >= 0"),
            ('wide: clip twice', 'clip,' + ','.join(EMOTIONS) + '\n%d,1,0,0,0,0,0,0\n%d,1,0,0,0,0,0,0\n' % (b, b), 3,
             'appears twice (also on line 2)'),
            ('wide: no votes', 'clip,' + ','.join(EMOTIONS) + '\n%d,0,0,0,0,0,0,0\n' % b, 2, 'has no votes'),
            ('wide: other votes stored', 'clip,' + ','.join(EMOTIONS) + '\nid:%d,1,0,0,0,0,0,9\n' % a, 2,
             'already has other votes'),
            ('wide: short row', 'clip,' + ','.join(EMOTIONS) + '\n%d,1,0\n' % b, 2, 'expected 8 fields'),
        ]
        before = dump(self.home)
        for what, text, line, reason in cases:
            with self.subTest(what):
                f = self.path('bad.csv')
                write_text(f, text)
                r = self.home.ctl('labels', 'import', f, check=False)
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                self.assertIn('%s:%d: ' % (f, line), r.stderr)
                self.assertIn(reason, r.stderr)
                self.assertIn('nothing was stored', r.stderr)
                self.assertEqual(dump(self.home), before)
        # a binary file (a spreadsheet under another name), and a broken spreadsheet
        for name in ('votes.bin', 'votes.xlsx'):
            with open(self.path(name), 'wb') as fb:
                fb.write(b'PK\x03\x04\x00\x00binary')
        r = self.home.ctl('labels', 'import', self.path('votes.bin'), check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('votes.bin:1: the line holds a NUL byte (is this a text CSV file?)', r.stderr)
        r = self.home.ctl('labels', 'import', self.path('votes.xlsx'), check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('cannot read the spreadsheet %s: ' % self.path('votes.xlsx'), r.stderr)
        self.assertIn('is not an .xlsx spreadsheet', r.stderr)
        self.assertEqual(dump(self.home), before)
        # JSON lists every error with its line; a missing file is a clear error
        write_text(self.path('bad.csv'), 'clip,annotator,emotion\n999,a,happy\n%d,b,nope\n' % c)
        r = self.home.ctl('--json', 'labels', 'import', self.path('bad.csv'), check=False)
        out = json.loads(r.stdout)
        self.assertEqual((out['rejected'], out['error_count']), (True, 2))
        self.assertEqual([e['line'] for e in out['errors']], [2, 3])
        # the explicit forms of both
        self.assertEqual([r['clip'] for r in self.home.ctl_json('labels', 'show', 'id:%d' % a, '%05d' % a)],
                         sorted([a, b]))
        r = self.home.ctl('labels', 'import', self.path('nope.csv'), check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('cannot read', r.stderr)
        self.assertEqual(dump(self.home), before)

    def test_wide_import_replace_and_threshold(self):
        a, b, c, d = self.clips
        f = self.path('wide.csv')
        write_wide(f, [(a, [7, 1, 1, 1, 0, 0, 0]), (b, [0, 6, 0, 4, 0, 0, 0]), ('00042', [0, 0, 0, 0, 0, 10, 0])])
        out = self.home.ctl_json('labels', 'import', f)
        self.assertEqual((out['format'], out['added']), ('wide', 30))
        self.assertEqual(self.home.scalar("SELECT group_concat(annotator) FROM votes WHERE clip_id = ?", a),
                         '#1,#10,#2,#3,#4,#5,#6,#7,#8,#9')
        labels = {r['clip_id']: r['label'] for r in self.home.query('SELECT clip_id, label FROM clip_labels')}
        self.assertEqual(labels, {a: 1, b: None, d: 6})
        before = dump(self.home)
        self.assertEqual(self.home.ctl_json('labels', 'import', f)['unchanged'], 30)
        self.assertEqual(dump(self.home), before)
        # other counts for b: refused, then accepted with --replace
        write_wide(f, [(b, [0, 8, 0, 2, 0, 0, 0])])
        r = self.home.ctl('labels', 'import', f, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('add --replace', r.stderr)
        self.assertEqual(self.home.ctl_json('labels', 'import', '--replace', f)['replaced'], 10)
        self.assertEqual(self.home.scalar('SELECT label FROM clip_labels WHERE clip_id = ?', b), 2)
        # r = 5 in dfew.conf: 6 of 10 is a single label now; the view follows
        self.home.write_config('[labels]\nsingle_label_threshold = 5\n')
        write_wide(f, [(c, [0, 0, 6, 4, 0, 0, 0])])
        r = self.home.ctl('labels', 'import', f)
        self.assertIn('threshold r is now 5', r.stderr)
        self.assertEqual(self.home.scalar('SELECT threshold FROM label_settings'), 5)
        self.assertEqual(self.home.scalar('SELECT label_name FROM clip_labels WHERE clip_id = ?', c), 'neutral')
        self.home.write_config('[labels]\nsingle_label_threshold = 6\n')
        self.home.ctl('labels', 'show')
        self.assertEqual(self.home.scalar('SELECT label_name FROM clip_labels WHERE clip_id = ?', c), 'ambiguous')
        # a bad [labels] section stops the command with the reason
        self.home.write_config('[labels]\nsingle_label_threshold = 12\n')
        r = self.home.ctl('labels', 'kappa', check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('leaves no clip single-labelled', r.stderr)

    def test_wide_headers_in_any_order_csv_and_xlsx(self):
        """Vote counts whose header names the columns as the release's copies
        do (1happy .. 7fear, order, label), in any order, from a CSV or an
        .xlsx (openpyxl); the label column is left alone (the rule makes the
        label); a header that cannot be placed says which column."""
        a, b, c, d = self.clips
        counts = {a: [8, 1, 1, 0, 0, 0, 0], b: [0, 0, 0, 9, 1, 0, 0], d: [0, 7, 3, 0, 0, 0, 0]}
        names = ['label', '3neutral', 'order', '1happy', '7fear', '2sad', '4angry', '6disgust', '5surprise']
        emo = ['1happy', '2sad', '3neutral', '4angry', '5surprise', '6disgust', '7fear']

        def row(clip):
            by = dict(zip(emo, counts[clip]), order='00042' if clip == d else str(clip), label='9')
            return [by[n] for n in names]
        write_text(self.path('moved.csv'), ','.join(names) + '\n' + ''.join(','.join(str(v) for v in row(x)) + '\n'
                                                                          for x in counts))
        out = self.home.ctl_json('labels', 'import', self.path('moved.csv'))
        self.assertEqual((out['format'], out['rows'], out['added']), ('wide', 3, 30))
        got = {r['clip_id']: [r[e] for e in EMOTIONS] for r in self.home.query('SELECT * FROM clip_labels')}
        self.assertEqual(got, counts)
        self.assertEqual(self.home.scalar('SELECT label_name FROM clip_labels WHERE clip_id = ?', b), 'angry')
        try:
            import openpyxl
        except ImportError:  # the CSV part above has run; the test shows as skipped with the reason
            self.skipTest('the .xlsx part: python3-openpyxl is not installed (scripts/setup-deps.sh)')
        wb = openpyxl.Workbook()
        ws = wb.active
        ws.append(names)
        for x in counts:
            ws.append([int(v) if v.isdigit() and k != 'order' else v for k, v in zip(names, map(str, row(x)))])
        wb.save(self.path('votes.xlsx'))
        before = dump(self.home)
        out = self.home.ctl_json('labels', 'import', self.path('votes.xlsx'))
        self.assertEqual((out['rows'], out['added'], out['unchanged']), (3, 0, 30))
        self.assertEqual(dump(self.home), before)
        # a column no name fits
        ws.cell(row=1, column=3, value='clip number')
        wb.save(self.path('bad.xlsx'))
        r = self.home.ctl('labels', 'import', self.path('bad.xlsx'), check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("bad.xlsx:1: the header line names no column for the clip name; these could not be placed: "
                      "column 3 ('clip number')", r.stderr)
        self.assertEqual(dump(self.home), before)

    def test_kappa_equals_statsmodels(self):
        rng = random.Random(20201017)
        n = 60
        con = self.home.db()
        with con:
            con.execute('DELETE FROM clips')
        con.close()
        ids = add_clips(self.home, [{'movie': self.movie, 'duration': 1 + i % 7} for i in range(n)])
        tables = []
        for p_agree in (0.45, 0.7, 0.9):
            counts = [random_counts(rng, 10, p_agree) for _ in ids]
            single = [cs for cs in counts if max(cs) > 6 and cs.count(max(cs)) == 1]
            tables.append((counts, single))
        ref = statsmodels_kappa([t for pair in tables for t in pair])
        f = os.path.join(self.home.dir, 'wide.csv')
        for i, (counts, single) in enumerate(tables):
            write_wide(f, list(zip(ids, counts)))
            self.home.ctl('labels', 'import', '--replace', f)
            k = self.home.ctl_json('labels', 'kappa')
            print('random table %d: kappa all %.6f (statsmodels %.6f), single-labelled %.6f (statsmodels %.6f), '
                  '%d of %d single-labelled' % (i, k['all']['kappa'], ref[2 * i], k['single_labelled']['kappa'],
                                                ref[2 * i + 1], len(single), n))
            self.assertAlmostEqual(k['all']['kappa'], ref[2 * i], places=10)
            self.assertAlmostEqual(k['single_labelled']['kappa'], ref[2 * i + 1], places=10)
            self.assertEqual((k['all']['clips'], k['single_labelled']['clips']), (n, len(single)))
            self.assertEqual((k['all']['min_raters'], k['all']['max_raters']), (10, 10))
            text = self.home.ctl('labels', 'kappa').stdout
            self.assertIn('%.3f' % k['all']['kappa'], text)
            self.assertIn(k['all']['band'], text)

    def test_kappa_classic_example(self):
        # Fleiss' example (10 subjects, 14 raters, 5 categories): kappa = 0.210.
        # Our 7 emotions hold its 5 categories; 2 stay empty, which changes nothing.
        self.home.write_config('[labels]\nannotators_per_clip = 14\n')
        classic = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                   [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
        ids = add_clips(self.home, [{'movie': self.movie, 'duration': 1} for _ in classic])
        f = os.path.join(self.home.dir, 'classic.csv')
        write_wide(f, [(i, row + [0, 0]) for i, row in zip(ids, classic)])
        self.home.ctl('labels', 'import', f)
        k = self.home.ctl_json('labels', 'kappa')['all']
        print('classic example through dfewctl: kappa %.5f, P %.5f, Pe %.5f (%s)' % (k['kappa'], k['pbar'], k['pe'],
                                                                                     k['band']))
        self.assertEqual(round(k['kappa'], 3), 0.210)
        self.assertEqual((round(k['pbar'], 3), round(k['pe'], 3)), (0.378, 0.213))
        self.assertEqual(k['band'], 'fair')
        self.assertAlmostEqual(k['kappa'], statsmodels_kappa([classic])[0], places=12)

    def test_report_and_table2(self):
        a, b, c, d = self.clips  # durations 1, 3, 6, 2.5 s
        e = add_clips(self.home, [{'movie': self.movie, 'duration': 0.5, 'state': 'unusable'},
                                  {'movie': self.movie, 'duration': 9, 'state': 'failed'}])
        f = os.path.join(self.home.dir, 'wide.csv')
        write_wide(f, [(a, [8, 1, 1, 0, 0, 0, 0]), (b, [0, 0, 0, 10, 0, 0, 0]), (c, [0, 0, 0, 9, 0, 1, 0]),
                       (d, [0, 5, 5, 0, 0, 0, 0]), (e[0], [7, 0, 0, 0, 0, 0, 3])])
        self.home.ctl('labels', 'import', f)
        t = self.home.ctl_json('report', 'table2')
        rows = {r['duration']: r for r in t['rows']}
        self.assertEqual(rows['0-2s']['counts'], [2, 0, 0, 0, 0, 0, 0])  # a (1 s) and the unusable 0.5 s clip
        self.assertEqual(rows['2-5s']['counts'], [0, 0, 0, 1, 0, 0, 0])  # b; d is ambiguous
        self.assertEqual(rows['5s+']['counts'], [0, 0, 0, 1, 0, 0, 0])   # c
        self.assertEqual(t['total']['total'], 4)
        self.assertEqual(t['total']['percent'], [50.0, 0, 0, 50.0, 0, 0, 0])
        self.assertEqual(rows['0-2s']['percent'], 50.0)
        got = list(csv.reader(io.StringIO(self.home.ctl('report', 'table2', '--csv').stdout)))
        self.assertEqual(got[0], ['duration'] + EMOTIONS + ['total', 'percent'])
        self.assertEqual(got[1], ['0-2s', '2', '0', '0', '0', '0', '0', '0', '2', '50.00'])
        self.assertEqual(got[4][:2] + got[4][-2:], ['total', '2', '4', '100.00'])
        self.assertEqual(got[5][:2], ['percent', '50.00'])
        text = self.home.ctl('report', 'table2').stdout
        self.assertIn('50.00%', text)
        s = self.home.ctl_json('report')
        self.assertEqual((s['movies'], s['clips'], s['annotated'], s['votes'], s['single_labelled']),
                         (1, 6, 5, 50, 4))
        self.assertEqual(s['clip_states'], {'usable': 4, 'unusable': 1, 'failed': 1, 'pending': 0})
        self.assertAlmostEqual(s['usable_ratio'], 0.8)
        self.assertEqual(s['labels']['angry'], 2)
        self.assertIsNotNone(s['kappa_all'])
        self.assertIsNone(s['newest_split'])
        text = self.home.ctl('report').stdout
        self.assertIn('usable 80.0 % of the prepared', text)
        self.assertIn('single-labelled  4 (80.0 %), ambiguous 1; r = 6', text)
        self.assertLessEqual(len(text.splitlines()), 24)


if __name__ == '__main__':
    main()
