"""Integration: `dfewctl export --format dfew|lists` and `dfewctl import dfew`
with real frame images (PNG frames of real test videos, made with the ffmpeg
CLI) and a real database. Export writes the DFEW release layout (JPEGs through
libavcodec) complete or not at all; importing it into a fresh home gives back
the same labels, votes and folds, and exporting again gives the same files.
Bad releases are rejected with file and line and change nothing. The
commands work while dfewd runs."""
import csv
import glob
import os
import random
import shutil
import struct
import subprocess
import zipfile

from dfewtest import Home, HomeTest, main, video
from labeltest import (EMOTIONS, add_clips, add_movies, cleanup_frames, copy_frames, dump, frames_of, init_db,
                       random_counts, read_dfer_list, rgb, write_text, write_wide)


def read_csv(path):
    with open(path, newline='') as f:
        return list(csv.reader(f))


def tree(root):
    """Relative paths of every file under root."""
    out = []
    for d, _, files in os.walk(root):
        out += [os.path.relpath(os.path.join(d, f), root) for f in files]
    return sorted(out)


def write_xlsx(path, rows):
    """A minimal .xlsx by hand: the first sheet lives in xl/worksheets/data.xml
    (found through the workbook's relationships). rows: (row number, cells);
    a cell is None (left out), ('n', number text), ('s', shared string),
    ('rich', shared string in two runs with a phonetic hint), ('inline', text)
    or ('str', a formula's cached text)."""
    shared, sheet = [], []
    for rn, cells in rows:
        xml = []
        for ci, cell in enumerate(cells):
            if cell is None:
                continue
            ref = '%s%d' % ('ABCDEFGHIJ'[ci], rn)
            kind, text = cell
            if kind == 'n':
                xml.append('<c r="%s"><v>%s</v></c>' % (ref, text))
            elif kind in ('s', 'rich'):
                if kind == 's':
                    shared.append('<si><t>%s</t></si>' % text)
                else:
                    shared.append('<si><r><t>%s</t></r><r><rPr><b/></rPr><t>%s</t></r><rPh sb="0" eb="1"><t>X</t>'
                                  '</rPh></si>' % (text[:3], text[3:]))
                xml.append('<c r="%s" t="s"><v>%d</v></c>' % (ref, len(shared) - 1))
            elif kind == 'inline':
                xml.append('<c r="%s" t="inlineStr"><is><t>%s</t></is></c>' % (ref, text))
            else:
                xml.append('<c r="%s" t="str"><f>TEXT(4,"0")</f><v>%s</v></c>' % (ref, text))
        sheet.append('<row r="%d">%s</row>' % (rn, ''.join(xml)))
    ns = 'http://schemas.openxmlformats.org/spreadsheetml/2006/main'
    rel = 'http://schemas.openxmlformats.org/officeDocument/2006/relationships'
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as z:
        z.writestr('[Content_Types].xml', '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/'
                   'package/2006/content-types"/>')
        z.writestr('xl/workbook.xml', '<?xml version="1.0"?><workbook xmlns="%s" xmlns:r="%s"><sheets>'
                   '<sheet name="annotation" sheetId="1" r:id="rId7"/></sheets></workbook>' % (ns, rel))
        z.writestr('xl/_rels/workbook.xml.rels', '<?xml version="1.0"?><Relationships xmlns="http://schemas.'
                   'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="x" '
                   'Target="styles.xml"/><Relationship Id="rId7" Type="y" Target="worksheets/data.xml"/>'
                   '</Relationships>')
        z.writestr('xl/sharedStrings.xml', '<?xml version="1.0"?><sst xmlns="%s" count="%d">%s</sst>' % (
            ns, len(shared), ''.join(shared)))
        z.writestr('xl/worksheets/data.xml', '<?xml version="1.0"?><worksheet xmlns="%s"><sheetData>%s</sheetData>'
                   '</worksheet>' % (ns, ''.join(sheet)))


class ExportTest(HomeTest):
    @classmethod
    def tearDownClass(cls):
        cleanup_frames()

    def make_dataset(self, home, n=24, k=3, frames=True):
        """Clips of two movies with real frames, votes, and a k-fold split."""
        init_db(home)
        movies = add_movies(home, 2)
        rng = random.Random(11)
        sources = [frames_of('single_face.mp4'), frames_of('mead_eamm/happy.mp4')] if frames else [None, None]
        specs = []
        for i in range(n):
            out = os.path.join(home.dir, 'outputs', 'clip%d' % i) if frames else None
            if frames:
                copy_frames(sources[i % 2], out)
                if i % 5 == 0:  # some clips keep their aligned frames before TIM
                    copy_frames(sources[(i + 1) % 2], os.path.join(out, 'aligned'))
                    for extra in glob.glob(os.path.join(out, 'aligned', '*.png'))[5:]:
                        os.unlink(extra)
            specs.append({'movie': movies[i % 2], 'duration': 1 + i % 7, 'output_dir': out,
                          'state': 'unusable' if i == n - 1 else 'usable'})
        ids = add_clips(home, specs)
        if frames:
            shutil.rmtree(specs[-1]['output_dir'])  # an unusable clip has no frames
            specs[-1]['output_dir'] = None
            con = home.db()
            with con:
                con.execute('UPDATE clips SET output_dir = NULL WHERE id = ?', (ids[-1],))
            con.close()
        rows = [(c, random_counts(rng, 10, 0.85)) for c in ids]
        rows[1] = (ids[1], [0, 5, 5, 0, 0, 0, 0])  # one ambiguous clip
        f = os.path.join(home.dir, 'votes.csv')
        write_wide(f, rows)
        home.ctl('labels', 'import', f)
        home.ctl('folds', 'make', '--k', str(k))
        return ids, specs

    def by_name(self, home, sql):
        return {r['name']: tuple(v for key, v in r.items() if key != 'name') for r in home.query(sql)}

    def labels_by_name(self, home):
        return self.by_name(home, "SELECT coalesce(c.name, printf('%05d', c.id)) AS name, happy, sad, neutral, angry, "
                                  "surprise, disgust, fear, votes, label FROM clip_labels l JOIN clips c "
                                  "ON c.id = l.clip_id")

    def folds_by_name(self, home):
        return self.by_name(home, "SELECT coalesce(c.name, printf('%05d', c.id)) AS name, f.fold, f.label "
                                  "FROM fold_members f JOIN clips c ON c.id = f.clip_id")

    def test_round_trip(self):
        ids, specs = self.make_dataset(self.home)
        out = os.path.join(self.home.dir, 'release')
        res = self.home.ctl_json('export', '--format', 'dfew', out)
        usable = [(i, s) for i, s in zip(ids, specs) if s['state'] == 'usable']
        aligned = [i for i, s in usable if os.path.isdir(os.path.join(s['output_dir'], 'aligned'))]
        self.assertEqual((res['size'], res['k'], res['annotated_clips']), (112, 3, len(ids)))
        self.assertEqual(res['frames'], 16 * len(usable) + 5 * len(aligned))
        self.assertEqual(glob.glob(out + '.tmp-*'), [])
        files = tree(out)
        for i, _ in usable:
            for j in range(1, 17):
                self.assertIn('Clip/clip_112x112_16f/%05d/%d.jpg' % (i, j), files)
        for i in aligned:
            self.assertEqual([f for f in files if f.startswith('Clip/clip_112x112/%05d/' % i)],
                             ['Clip/clip_112x112/%05d/%05d_%05d.jpg' % (i, i, j) for j in range(1, 6)])
        self.assertFalse(any('%05d' % ids[-1] in f for f in files if f.startswith('Clip/')))
        # a real JPEG (libavcodec MJPEG), close to the PNG it came from
        first = os.path.join(out, 'Clip/clip_112x112_16f/%05d/3.jpg' % ids[0])
        probe = subprocess.run(['ffprobe', '-v', 'error', '-show_entries', 'stream=codec_name,width,height', '-of',
                                'csv=p=0', first], capture_output=True, text=True, check=True).stdout.strip()
        self.assertEqual(probe, 'mjpeg,112,112')
        a, b = rgb(first), rgb(os.path.join(specs[0]['output_dir'], '03.png'))
        self.assertEqual(len(a), len(b))
        mad = sum(abs(x - y) for x, y in zip(a, b)) / len(a)
        other = rgb(os.path.join(specs[1]['output_dir'], '03.png'))  # another video's frame
        print('exported JPEG vs its PNG: mean abs difference %.2f (vs another clip: %.2f)' % (
            mad, sum(abs(x - y) for x, y in zip(a, other)) / len(a)))
        self.assertLess(mad, 3.0)
        # labels and splits
        ann = read_csv(os.path.join(out, 'Annotation/annotation.csv'))
        self.assertEqual(ann[0], ['vote_' + e for e in EMOTIONS] + ['clip_name', 'annotation'])
        self.assertEqual(len(ann) - 1, len(ids))
        self.assertIn(['0', '5', '5', '0', '0', '0', '0', '%05d' % ids[1], '0'], ann)
        # annotation.xlsx: the same rows, as openpyxl (what pandas' read_excel uses) reads them;
        # without it that part alone is skipped (visibly), the rest of the round trip runs
        with self.subTest('annotation.xlsx read by openpyxl'):
            try:
                import openpyxl
            except ImportError:
                self.skipTest('reading annotation.xlsx with openpyxl: python3-openpyxl is not installed '
                              '(scripts/setup-deps.sh)')
            book = openpyxl.load_workbook(os.path.join(out, 'Annotation/annotation.xlsx'), read_only=True)
            sheet = book.worksheets[0]
            self.assertEqual(sheet.title, 'annotation')
            rows = [list(r) for r in sheet.iter_rows(values_only=True)]
            book.close()
            self.assertEqual(rows[0], ann[0])
            self.assertEqual(rows[1:], [[int(v) for v in r[:7]] + [r[7], int(r[8])] for r in ann[1:]])
            self.assertTrue(all(isinstance(r[7], str) and len(r[7]) == 5 for r in rows[1:]))  # '00001', not 1
        members = self.folds_by_name(self.home)
        seen = {}
        for k in (1, 2, 3):
            test = read_csv(os.path.join(out, 'EmoLabel_DataSplit/test(single-labeled)/set_%d.csv' % k))
            train = read_csv(os.path.join(out, 'EmoLabel_DataSplit/train(single-labeled)/set_%d.csv' % k))
            self.assertEqual(test[0], ['video_name', 'label'])
            self.assertEqual(train[0], ['video_name', 'label'])
            for name, label in test[1:]:
                seen[name] = (k, int(label))
            self.assertEqual({n for n, _ in train[1:]}, {n for n, (f, _) in members.items() if f != k})
        self.assertEqual(seen, members)
        # into a fresh home: the same labels, votes and folds
        other = Home()
        try:
            r = other.ctl_json('import', 'dfew', out)
            self.assertEqual((r['clips_new'], r['with_frames'], r['k'], r['split_new']), (len(ids), len(usable), 3,
                                                                                         True))
            self.assertEqual(self.labels_by_name(other), self.labels_by_name(self.home))
            self.assertEqual(self.folds_by_name(other), members)
            self.assertEqual(other.scalar('SELECT count(*) FROM votes'), self.home.scalar('SELECT count(*) FROM votes'))
            self.assertEqual(other.scalar("SELECT count(*) FROM clips WHERE state = 'usable' AND output_dir IS NOT NULL"),
                             len(usable))
            self.assertEqual(other.scalar('SELECT count(*) FROM clips WHERE aligned_dir IS NOT NULL'), len(aligned))
            self.assertEqual(other.scalar("SELECT state FROM clips WHERE name = '%05d'" % ids[-1]), 'unusable')
            k1 = self.home.ctl_json('labels', 'kappa')
            self.assertEqual(other.ctl_json('labels', 'kappa'), k1)
            # importing again changes nothing
            before = dump(other)
            again = other.ctl_json('import', 'dfew', out)
            self.assertEqual((again['changed'], again['clips_unchanged'], again['split_new']), (False, len(ids), False))
            self.assertEqual(dump(other), before)
            # the spreadsheet alone gives the same labels (import reads annotation.xlsx without the CSV)
            xonly = os.path.join(other.dir, 'xlsx-only')
            shutil.copytree(os.path.join(out, 'Annotation'), os.path.join(xonly, 'Annotation'))
            shutil.copytree(os.path.join(out, 'EmoLabel_DataSplit'), os.path.join(xonly, 'EmoLabel_DataSplit'))
            os.unlink(os.path.join(xonly, 'Annotation/annotation.csv'))
            third = Home()
            try:
                third.ctl('import', 'dfew', '--no-tensors', xonly)
                self.assertEqual(self.labels_by_name(third), self.labels_by_name(self.home))
                self.assertEqual(self.folds_by_name(third), members)
            finally:
                third.cleanup()
            # and exporting again gives the same files (frames are copied JPEGs now)
            out2 = os.path.join(other.dir, 'release2')
            other.ctl('export', '--format', 'dfew', out2)
            self.assertEqual(tree(out2), files)
            for f in files:
                if f == 'README.txt':
                    continue
                with open(os.path.join(out, f), 'rb') as x, open(os.path.join(out2, f), 'rb') as y:
                    self.assertEqual(x.read(), y.read(), f)
        finally:
            other.cleanup()

    def test_force_and_all_or_nothing(self):
        ids, specs = self.make_dataset(self.home, n=12, k=2)
        out = os.path.join(self.home.dir, 'release')
        os.makedirs(out)
        write_text(os.path.join(out, 'keep.txt'), 'mine')
        r = self.home.ctl('export', '--format', 'dfew', out, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('exists; choose another directory, or add --force', r.stderr)
        self.assertEqual(os.listdir(out), ['keep.txt'])
        self.home.ctl('export', '--format', 'dfew', '--force', out)
        self.assertNotIn('keep.txt', os.listdir(out))
        self.assertIn('Annotation', os.listdir(out))
        self.assertEqual(glob.glob(out + '.tmp-*'), [])
        # a usable clip lost its frames: nothing is written
        shutil.rmtree(specs[2]['output_dir'])
        out2 = os.path.join(self.home.dir, 'release2')
        r = self.home.ctl('export', '--format', 'dfew', out2, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('clip %d (%05d) is usable but has no frames' % (ids[2], ids[2]), r.stderr)
        self.assertIn('--no-frames', r.stderr)
        self.assertFalse(os.path.exists(out2))
        self.assertEqual(glob.glob(out2 + '.tmp-*'), [])
        # a failing --force leaves the old export as it was
        before = tree(out)
        r = self.home.ctl('export', '--format', 'dfew', '--force', out, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(tree(out), before)
        # labels and splits only
        res = self.home.ctl_json('export', '--format', 'dfew', '--no-frames', out2)
        self.assertEqual((res['frames'], res['size']), (0, 0))
        self.assertEqual(sorted(os.listdir(out2)), ['Annotation', 'EmoLabel_DataSplit', 'README.txt'])
        # a frame of another size
        subprocess.run(['ffmpeg', '-loglevel', 'error', '-y', '-i', os.path.join(specs[0]['output_dir'], '01.png'),
                        '-vf', 'scale=64:48', os.path.join(specs[4]['output_dir'], '01.png')], check=True)
        shutil.rmtree(out2)
        copy_frames(specs[0]['output_dir'], specs[2]['output_dir'])
        r = self.home.ctl('export', '--format', 'dfew', out2, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('64x48', r.stderr)
        self.assertFalse(os.path.exists(out2))
        r = self.home.ctl('export', '--format', 'zip', out2, check=False)
        self.assertEqual(r.returncode, 2)

    def test_lists(self):
        """The lists point at folders inside the export that hold exactly each
        clip's frames as JPEG, relative to the export folder: read as
        Former-DFER and DFER-CLIP read them, before and after the export is
        moved; each JPEG is its clip's frame of the same number."""
        ids, specs = self.make_dataset(self.home, n=15, k=3)
        for s in specs:  # what a prepared clip's folder holds besides the frames
            if s['output_dir']:
                for extra in ('aligned.u8', 'clip.u8', 'faces.bin'):
                    write_text(os.path.join(s['output_dir'], extra), 'not a frame')
        out = os.path.join(self.home.dir, 'lists')
        res = self.home.ctl_json('export', '--format', 'lists', out)
        members = {r['clip_id']: (r['fold'], r['label']) for r in self.home.query('SELECT * FROM fold_members')}
        self.assertEqual((res['split_clips'], res['frames']), (len(members), 16 * len(members)))
        names = {c: '%05d' % c for c in members}
        self.assertEqual(tree(out), sorted(['README.txt'] + ['set_%d/%s.txt' % (k, p) for k in (1, 2, 3)
                                                             for p in ('test', 'train')] +
                                           ['frames/%s/%02d.jpg' % (names[c], i) for c in members
                                            for i in range(1, 17)]))
        out_dir = {i: s['output_dir'] for i, s in zip(ids, specs)}
        moved = os.path.join(self.home.dir, 'elsewhere', 'dfew-lists')
        os.makedirs(os.path.dirname(moved))
        for root in (out, moved):
            if root == moved:
                shutil.move(out, moved)
            for k in (1, 2, 3):
                for part in ('train', 'test'):
                    lst = os.path.join('set_%d' % k, part + '.txt')
                    got = read_dfer_list(root, lst)
                    want = sorted(('frames/' + names[c], 16, lab - 1) for c, (fold, lab) in members.items()
                                  if (fold == k) == (part == 'test'))
                    with open(os.path.join(root, lst)) as f:
                        self.assertEqual(sorted((p, int(n), int(lab)) for p, n, lab in
                                                (ln.split(' ') for ln in f.read().splitlines())), want)
                    self.assertEqual(len(got), len(want))
                    for frames, n, _ in got:
                        self.assertTrue(all(fr.startswith(root + os.sep) for fr in frames))
        # frame 5 of a clip is its 05.png, re-encoded (and not its 01.png)
        mad = lambda a, b: sum(abs(x - y) for x, y in zip(a, b)) / len(a)
        mads = []
        for c in sorted(members)[:4]:
            jpg5 = rgb(os.path.join(moved, 'frames', names[c], '05.jpg'))
            src5, src1 = rgb(os.path.join(out_dir[c], '05.png')), rgb(os.path.join(out_dir[c], '01.png'))
            self.assertEqual(len(jpg5), len(src5))
            mads.append((mad(jpg5, src5), mad(jpg5, src1)))
        print('lists: 05.jpg vs 05.png mean abs difference %s (vs 01.png: %s)' % (
            ', '.join('%.2f' % m for m, _ in mads), ', '.join('%.2f' % o for _, o in mads)))
        self.assertTrue(all(m < 3.0 for m, _ in mads))
        self.assertTrue(any(o > 3 * m + 1 for m, o in mads))
        with open(os.path.join(moved, 'README.txt')) as f:
            self.assertIn('relative to this folder', f.read())

    def test_split_choice(self):
        """Without --split: the only split, else the official 'dfew' one;
        several splits and none of them 'dfew' are refused, naming them. The
        output names the split."""
        self.make_dataset(self.home, n=12, k=2, frames=False)
        first = self.home.scalar('SELECT name FROM splits')
        res = self.home.ctl_json('export', '--format', 'dfew', '--no-frames', os.path.join(self.home.dir, 'a'))
        self.assertEqual(res['split'], first)
        self.home.ctl('folds', 'make', '--k', '3', '--seed', '7', '--name', 'experiment')
        before = tree(self.home.dir)
        r = self.home.ctl('export', '--format', 'dfew', '--no-frames', os.path.join(self.home.dir, 'b'), check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("there are 2 splits ('%s', 'experiment') and none is the official 'dfew' one" % first, r.stderr)
        self.assertIn('--split NAME', r.stderr)
        self.assertEqual(tree(self.home.dir), before)  # nothing written
        r = self.home.ctl('export', '--format', 'dfew', '--no-frames', '--split', 'experiment',
                          os.path.join(self.home.dir, 'b'))
        self.assertIn("split 'experiment' (3 folds", r.stdout)
        # the official split wins over a newer experiment
        con = self.home.db()
        with con:
            con.execute("UPDATE splits SET name = 'dfew' WHERE name = ?", (first,))
        con.close()
        self.home.ctl('folds', 'make', '--k', '4', '--seed', '8', '--name', 'newest')
        r = self.home.ctl('export', '--format', 'lists', os.path.join(self.home.dir, 'c'), check=False)
        self.assertIn("split 'dfew'", r.stderr)  # no frames here: the lists say which split needs them
        r = self.home.ctl('export', '--format', 'dfew', '--no-frames', os.path.join(self.home.dir, 'c'))
        self.assertIn("split 'dfew' (2 folds", r.stdout)
        with open(os.path.join(self.home.dir, 'c', 'README.txt')) as f:
            self.assertIn("split 'dfew': 2 folds", f.read())

    def release(self, root, ann, tests, trains=None, frames=()):
        """A hand-made DFEW-layout release."""
        os.makedirs(os.path.join(root, 'Annotation'))
        if isinstance(ann, bytes):  # as it is, not as UTF-8
            with open(os.path.join(root, 'Annotation/annotation.csv'), 'wb') as f:
                f.write(ann)
        else:
            write_text(os.path.join(root, 'Annotation/annotation.csv'), ann)
        for part, sets in (('test', tests), ('train', trains)):
            if sets is None:
                continue
            d = os.path.join(root, 'EmoLabel_DataSplit/%s(single-labeled)' % part)
            os.makedirs(d)
            for k, text in enumerate(sets, 1):
                write_text(os.path.join(d, 'set_%d.csv' % k), text)
        for name in frames:
            copy_frames(frames_of('single_face.mp4'), os.path.join(root, 'Clip/clip_112x112_16f', name))

    def test_import_checks(self):
        init_db(self.home)
        ann = ('vote_happy,vote_sad,vote_neutral,vote_angry,vote_surprise,vote_disgust,vote_fear,clip_name,annotation\n'
               '8,1,1,0,0,0,0,1,1\n0,0,0,9,1,0,0,2,4\n0,7,3,0,0,0,0,00003,2\n5,5,0,0,0,0,0,4,0\n')
        good_tests = ['video_name,label\n00001,1\n', 'video_name,label\n00002,4\n00003,2\n']
        good_trains = ['video_name,label\n00002,4\n00003,2\n', 'video_name,label\n00001,1\n']
        cases = [
            ('not in the annotation', ann, ['video_name,label\n00001,1\n00009,3\n', good_tests[1]], good_trains,
             'test(single-labeled)/set_1.csv:3: video 00009 is not in the annotation file'),
            ('in two test sets', ann, ['video_name,label\n00001,1\n00002,4\n', good_tests[1]], None,
             'test(single-labeled)/set_2.csv:2: video 00002 is also on'),
            ('train lacks a clip', ann, good_tests, ['video_name,label\n00002,4\n', good_trains[1]],
             "video 00003 (test set of fold 2) is missing from train set_1.csv"),
            ('train and test of one fold', ann, good_tests, [good_trains[0], 'video_name,label\n00001,1\n00002,4\n'],
             'train(single-labeled)/set_2.csv:3: video 00002 is in the train and the test set of fold 2'),
            ('bad label', ann, ['video_name,label\n00001,9\n', good_tests[1]], None, "the label '9' is not 1..7"),
            ('bad votes', ann.replace('8,1,1', '8,x,1'), good_tests, None,
             "annotation.csv:2: field 2 (vote_sad) ('x') must be a vote count"),
            ('too many votes', ann.replace('8,1,1', '9,9,1'), good_tests, None, 'clip 1 has 19 votes'),
            ('clip twice', ann + '1,1,1,1,1,1,1,00002,0\n', good_tests, None, 'clip 00002 appears twice (also on line 3)'),
            ('short line', ann + '1,2,3\n', good_tests, None, 'annotation.csv:6: expected 9 fields'),
            ('one test set', ann, good_tests[:1], None, 'needs set_1.csv, set_2.csv'),
            ('name with a slash', ann + '1,1,1,1,1,1,1,../x,0\n', good_tests, None,
             "annotation.csv:6: the clip name '../x' may hold letters, digits"),
            # text from the release enters the database: UTF-8 only (a Latin-1
            # file is refused naming line and column), fields capped at 1024 bytes
            ('Latin-1', ann.encode().replace(b'00003', b'0000\xfc3'), good_tests, None,
             'annotation.csv:4: not UTF-8 at column 19 (byte 0xfc)'),
            ('field too long', ann + '1,1,1,1,1,1,1,%s,0\n' % ('7' * 1025), good_tests, None,
             'annotation.csv:6: field 8 is 1025 bytes long, more than 1024'),
        ]
        before = dump(self.home)
        for i, (what, a, tests, trains, reason) in enumerate(cases):
            with self.subTest(what):
                root = os.path.join(self.home.dir, 'rel%d' % i)
                self.release(root, a, tests, trains)
                r = self.home.ctl('import', 'dfew', root, check=False)
                self.assertEqual(r.returncode, 1, r.stdout)
                self.assertIn(reason, r.stderr)
                self.assertEqual(dump(self.home), before)
        # a spreadsheet that is not one: said so, nothing stored
        root = os.path.join(self.home.dir, 'xlsx')
        os.makedirs(os.path.join(root, 'Annotation'))
        write_text(os.path.join(root, 'Annotation/annotation.xlsx'), 'PK')
        r = self.home.ctl('import', 'dfew', root, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('annotation.xlsx is not an .xlsx spreadsheet', r.stderr)
        self.assertEqual(dump(self.home), before)
        self.assertEqual(self.home.ctl('import', 'dfew', os.path.join(self.home.dir, 'none'), check=False).returncode, 1)
        # the good one, with frames for some clips and the numbers of a spreadsheet ("1" for "00001")
        root = os.path.join(self.home.dir, 'good')
        self.release(root, ann, good_tests, good_trains, frames=['00001', '00002'])
        res = self.home.ctl_json('import', 'dfew', root)
        self.assertEqual((res['clips_new'], res['with_frames'], res['k'], res['rule_mismatches']), (4, 2, 2, 0))
        states = {r['name']: (r['state'], r['output_dir'] is not None) for r in
                  self.home.query('SELECT name, state, output_dir FROM clips')}
        self.assertEqual(states, {'00001': ('usable', True), '00002': ('usable', True),
                                  '00003': ('usable', False),  # in the split, frames not in this copy
                                  '00004': ('unusable', False)})  # the release has frames, but none for it
        self.assertEqual(self.home.scalar("SELECT label_name FROM clip_labels WHERE name = '00003'"), 'sad')
        self.assertEqual(self.home.scalar("SELECT label_name FROM clip_labels WHERE name = '00004'"), 'ambiguous')
        self.assertEqual(self.home.scalar("SELECT count(*) FROM fold_clips WHERE split = 'dfew'"), 3)
        # a clip name taken by another movie's clip is refused
        other = os.path.join(self.home.dir, 'other')
        self.release(other, ann.replace('5,5,0', '6,4,0'), good_tests, None)
        before = dump(self.home)
        r = self.home.ctl('import', 'dfew', '--split', 'other', other, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('a clip named 00001 exists already', r.stderr)
        self.assertEqual(dump(self.home), before)

    def test_import_xlsx(self):
        """The release's Annotation/annotation.xlsx is read as it is: one
        written by openpyxl gives what its CSV gives; a hand-made one with
        shared, rich-text and inline strings, a skipped row, whole numbers
        stored as 9.0 and the sheet under another name; errors name the row."""
        init_db(self.home)
        tests = ['video_name,label\n00001,1\n', 'video_name,label\n00002,4\n00003,2\n']
        trains = ['video_name,label\n00002,4\n00003,2\n', 'video_name,label\n00001,1\n']
        header = ['vote_happy', 'vote_sad', 'vote_neutral', 'vote_angry', 'vote_surprise', 'vote_disgust', 'vote_fear',
                  'clip_name', 'annotation']
        rows = [[8, 1, 1, 0, 0, 0, 0, 1, 1], [0, 0, 0, 9, 1, 0, 0, 2, 4], [0, 7, 3, 0, 0, 0, 0, '00003', 2],
                [5, 5, 0, 0, 0, 0, 0, 4, 0]]
        csv_text = ','.join(header) + '\n' + ''.join(','.join(str(v) for v in row) + '\n' for row in rows)
        want = Home()
        try:
            ref = os.path.join(self.home.dir, 'ref')
            self.release(ref, csv_text, tests, trains)
            want.ctl('import', 'dfew', ref)
            expect = self.labels_by_name(want)
            self.assertEqual(len(expect), 4)

            def import_xlsx(name, write):
                root = os.path.join(self.home.dir, name)
                self.release(root, csv_text, tests, trains)
                os.unlink(os.path.join(root, 'Annotation/annotation.csv'))
                write(os.path.join(root, 'Annotation/annotation.xlsx'))
                home = Home()
                try:
                    r = home.ctl('import', 'dfew', root, check=False)
                    return r, (self.labels_by_name(home) if r.returncode == 0 else None)
                finally:
                    home.cleanup()

            # columns in another order, named by the header, with one more: the same labels
            order = ['order', 'clip_name', '1happy', '2sad', '3neutral', '4angry', '5surprise', '6disgust', '7fear',
                     'label']
            moved = ','.join(order) + '\n' + ''.join(
                '%d,%s,%s,%s\n' % (i, row[7], ','.join(str(v) for v in row[:7]), row[8]) for i, row in enumerate(rows))
            root = os.path.join(self.home.dir, 'moved')
            self.release(root, moved, tests, trains)
            home = Home()
            try:
                home.ctl('import', 'dfew', root)
                self.assertEqual(self.labels_by_name(home), expect)
            finally:
                home.cleanup()
            # written by openpyxl (Debian's python3-openpyxl), as a spreadsheet program would;
            # without it that part alone is skipped (visibly), the hand-made files below still run
            with self.subTest('written by openpyxl'):
                try:
                    import openpyxl
                except ImportError:
                    self.skipTest('the openpyxl part: python3-openpyxl is not installed (scripts/setup-deps.sh)')
                def by_openpyxl(path):
                    wb = openpyxl.Workbook()
                    ws = wb.active
                    ws.title = 'annotation'
                    ws.append(header)
                    for row in rows:
                        ws.append(row)
                    wb.save(path)
                r, got = import_xlsx('openpyxl', by_openpyxl)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(got, expect)

                # as copies of the release name them: 1happy .. 7fear, order (the clip), label; any column order
                def release_copy(names):
                    def write(path):
                        wb = openpyxl.Workbook()
                        ws = wb.active
                        ws.append(names)
                        for row in rows:
                            by = dict(zip(['1happy', '2sad', '3neutral', '4angry', '5surprise', '6disgust', '7fear',
                                           'order', 'label'], row))
                            ws.append([by.get(n, 'x') for n in names])
                        wb.save(path)
                    return write
                names = ['label', '3neutral', 'order', '1happy', '7fear', '2sad', '4angry', '6disgust', '5surprise']
                r, got = import_xlsx('release-copy', release_copy(names))
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(got, expect)
                # a header that is not understood: which column could not be placed, and nothing stored
                r, got = import_xlsx('unplaced', release_copy([n if n != 'order' else 'clip nr' for n in names]))
                self.assertEqual(r.returncode, 1)
                self.assertIn("annotation.xlsx:1: the header line names no column for the clip name; these could "
                              "not be placed: column 3 ('clip nr')", r.stderr)
                self.assertIsNone(got)
                r, _ = import_xlsx('extra', release_copy(names + ['1happy']))
                self.assertEqual(r.returncode, 0, r.stderr)  # everything placed: the extra column is left alone
                r, _ = import_xlsx('happy-twice', release_copy(names[:4] + ['happy'] + names[5:]))  # no fear, happy twice
                self.assertIn("no column for fear; these could not be placed: column 5 ('happy': column 4 is that "
                              "already)", r.stderr)
            # by hand, with the parts other writers use
            def handmade(missing=False):
                return [
                    (1, [('s', h) for h in header]),
                    (2, [('n', '8'), ('n', '1'), ('n', '1.0'), ('n', '0'), ('n', '0'), ('n', '0'), ('n', '0'),
                         ('n', '1'), ('n', '1')]),
                    (4, [('n', '0'), ('n', '0'), ('n', '0'), ('n', '9.0'), ('n', '1'), ('n', '0'), ('n', '0'),
                         ('inline', '00002'), ('n', '4')]),  # row 3 left out
                    (5, [('n', '0'), ('n', '7'), ('n', '3'), None if missing else ('n', '0'), ('n', '0'), ('n', '0'),
                         ('n', '0'), ('rich', '00003'), ('n', '2')]),  # '000' + '03', a hint 'X' left out
                    (6, [('n', '5'), ('n', '5'), ('n', '0'), ('n', '0'), ('n', '0'), ('n', '0'), ('n', '0'),
                         ('str', '4'), ('n', '0')]),
                ]
            r, got = import_xlsx('handmade', lambda path: write_xlsx(path, handmade()))
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(got, expect)
            # an empty vote cell is an error that names the spreadsheet row (5: row 3 is missing)
            r, got = import_xlsx('handmade-bad', lambda path: write_xlsx(path, handmade(missing=True)))
            self.assertEqual(r.returncode, 1)
            self.assertIn("annotation.xlsx:5: field 4 (vote_angry) ('') must be a vote count", r.stderr)
            # a zip that is no spreadsheet
            def not_a_sheet(path):
                with zipfile.ZipFile(path, 'w') as z:
                    z.writestr('hello.txt', 'hi')
            r, got = import_xlsx('zip', not_a_sheet)
            self.assertEqual(r.returncode, 1)
            self.assertIn('no worksheet xl/worksheets/sheet1.xml', r.stderr)
        finally:
            want.cleanup()

    def test_import_durations_from_originals(self):
        init_db(self.home)
        root = os.path.join(self.home.dir, 'rel')
        ann = ('8,1,1,0,0,0,0,00001,1\n0,0,0,9,1,0,0,00002,4\n0,7,3,0,0,0,0,00003,2\n0,0,0,0,10,0,0,00004,5\n')
        self.release(root, ann, ['video_name,label\n00001,1\n00003,2\n', 'video_name,label\n00002,4\n00004,5\n'])
        orig = os.path.join(root, 'Clip/original')
        os.makedirs(orig)
        shutil.copy(video('single_face.mp4'), os.path.join(orig, '00001.mp4'))     # 72 frames at 30 fps
        shutil.copy(video('mead_eamm/happy.mp4'), os.path.join(orig, '00002.mp4'))  # 141 at 25 fps
        subprocess.run(['ffmpeg', '-loglevel', 'error', '-i', video('single_face.mp4'), '-t', '1', '-c:v', 'libx264',
                        '-an', os.path.join(orig, '00003.mp4')], check=True)     # about 1 s
        res = self.home.ctl_json('import', 'dfew', root)
        self.assertEqual(res['with_duration'], 3)
        d = {r['name']: r for r in self.home.query('SELECT name, round(end_s - start_s, 2) AS d, duration_known '
                                                   'FROM clips')}
        self.assertEqual(d['00001']['d'], 2.4)  # the video stream's duration
        self.assertEqual(d['00002']['d'], 5.64)
        self.assertLess(d['00003']['d'], 2)
        self.assertEqual(d['00004']['duration_known'], 0)
        t = {r['duration']: r['counts'] for r in self.home.ctl_json('report', 'table2')['rows']}
        self.assertEqual(t, {'0-2s': [0, 1, 0, 0, 0, 0, 0], '2-5s': [1, 0, 0, 0, 0, 0, 0],
                             '5s+': [0, 0, 0, 1, 0, 0, 0], 'unknown': [0, 0, 0, 0, 1, 0, 0]})
        self.assertIn('unknown: clips imported without their original video', self.home.ctl('report', 'table2').stdout)

    @staticmethod
    def png_rgb(path, w, h):
        """A PNG's pixels as rgb24 bytes, decoded by the ffmpeg command line."""
        px = subprocess.run(['ffmpeg', '-nostdin', '-v', 'error', '-i', path, '-f', 'rawvideo', '-pix_fmt', 'rgb24',
                             '-'], check=True, capture_output=True).stdout
        assert len(px) == w * h * 3, (len(px), w, h)
        return px

    def test_import_builds_tensors_and_trains(self):
        """Import queues a tensor job per clip with frames; dfewd builds each
        clip.u8 from the release's JPEGs, scaled to [prep] size, and the
        imported split trains."""
        ids, specs = self.make_dataset(self.home, n=12, k=2)
        out = os.path.join(self.home.dir, 'release')
        self.home.ctl('export', '--format', 'dfew', out)
        usable = [i for i, s in zip(ids, specs) if s['state'] == 'usable']
        other = Home(config='[prep]\nsize = 56\n')
        try:
            r = other.ctl_json('import', 'dfew', out)
            self.assertEqual(r['tensor_jobs_queued'], len(usable))
            t = other.ctl('train', '--split', 'dfew', check=False)  # before the jobs ran
            self.assertEqual(t.returncode, 1)
            self.assertIn('tensor job', t.stderr)
            # an imported clip's sheet before its tensor exists: the release's 16f JPEGs at [prep] size
            first = other.scalar('SELECT id FROM clips WHERE name = ?', '%05d' % usable[0])
            sheet_png = os.path.join(other.dir, 'sheet.png')
            before = other.ctl_json('sheet', str(first), '-o', sheet_png)
            self.assertEqual((before['width'], before['aligned_frames']), (8 * 56 + 7 * 4, 16))
            self.assertGreater(before['sampled_frames'], 0)  # the release's aligned face frames, on top
            before_px = self.png_rgb(sheet_png, before['width'], before['height'])
            other.start()
            jobs = [row['id'] for row in other.query("SELECT id FROM jobs WHERE kind = 'tensor'")]
            self.assertEqual(len(jobs), len(usable))
            self.assertEqual(other.ctl('wait', '--timeout', '120', *jobs).returncode, 0)
            rows = other.query('SELECT id, name, output_dir, tensor_path FROM clips WHERE tensor_path IS NOT NULL '
                               'ORDER BY id')
            self.assertEqual([row['name'] for row in rows], ['%05d' % i for i in usable])
            mads = []
            for row in rows[:3]:
                self.assertEqual(row['tensor_path'], os.path.join(other.dir, 'outputs', 'clips', str(row['id']),
                                                                  'clip.u8'))
                with open(row['tensor_path'], 'rb') as f:
                    data = f.read()
                self.assertEqual(data[:8], b'DFEWCLIP')
                self.assertEqual(struct.unpack_from('<IIIIII', data, 8), (1, 32, 16, 56, 56, 3))
                self.assertEqual(len(data), 32 + 16 * 56 * 56 * 3)
                # frame 5 against the ffmpeg command line's area scaling of 5.jpg
                jpg = os.path.join(row['output_dir'], '5.jpg')
                ref = subprocess.run(['ffmpeg', '-nostdin', '-v', 'error', '-i', jpg, '-vf', 'scale=56:56:flags=area',
                                      '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'], check=True,
                                     capture_output=True).stdout
                frame = data[32 + 4 * 56 * 56 * 3:32 + 5 * 56 * 56 * 3]
                mads.append((sum(abs(x - y) for x, y in zip(frame, ref)) / len(ref),
                             sum(abs(x - y) for x, y in zip(data[32:32 + len(ref)], ref)) / len(ref)))
            print('tensor frame 5 vs ffmpeg area-scaled 5.jpg: mean abs difference %s (vs frame 1: %s)' % (
                ', '.join('%.2f' % m for m, _ in mads), ', '.join('%.2f' % o for _, o in mads)))
            for mad, _ in mads:
                self.assertLess(mad, 3.0)
            self.assertTrue(any(o > 3 * m + 1 for m, o in mads))  # frames differ: the right one was compared
            # the sheet again, now from the tensor: its first frame exactly, and close to the JPEG-drawn one
            after = other.ctl_json('sheet', str(first), '-o', sheet_png)
            self.assertEqual((after['width'], after['height']), (before['width'], before['height']))
            after_px = self.png_rgb(sheet_png, after['width'], after['height'])
            y0 = (after['sampled_frames'] + 3) // 4 * (112 + 4) + 4
            region = lambda px: b''.join(px[((y0 + y) * after['width']) * 3:((y0 + y) * after['width'] + 56) * 3]
                                         for y in range(56))
            with open(other.scalar('SELECT tensor_path FROM clips WHERE id = ?', first), 'rb') as f:
                self.assertEqual(region(after_px), f.read()[32:32 + 56 * 56 * 3])
            sheet_mad = sum(abs(x - y) for x, y in zip(region(before_px), region(after_px))) / (56 * 56 * 3)
            print('sheet of an imported clip: JPEG-drawn frame 1 vs its tensor: mean abs difference %.2f' % sheet_mad)
            self.assertLess(sheet_mad, 3.0)
            self.assertNotEqual(region(after_px), b'\x20' * (56 * 56 * 3))  # not the background
            # importing again queues nothing
            again = other.ctl_json('import', 'dfew', out)
            self.assertEqual((again['tensor_jobs_queued'], again['tensors_done_or_queued']), (0, len(usable)))
            # the imported official folds train
            run = other.ctl_json('train', '--split', 'dfew', '--folds', '1', '--backend', 'cpu', '--width', '0.125',
                                 '--epochs', '1', '--batch', '4', '--crop', '28', '--threads', '1', '--loss', 'ce')
            self.assertEqual(run['input'], [16, 28, 28])
            self.assertEqual(other.ctl('wait', '--timeout', '300', *run['jobs']).returncode, 0)
            test1 = other.scalar("SELECT count(*) FROM fold_clips WHERE split = 'dfew' AND fold = 1")
            self.assertEqual(other.scalar('SELECT count(*) FROM predictions WHERE run_id = ?', run['run_id']), test1)
            self.assertEqual(other.scalar("SELECT count(*) FROM fold_clips WHERE split = 'dfew' AND tensor = "
                                          "(SELECT tensor_path FROM clips WHERE id = fold_clips.clip_id)"),
                             other.scalar("SELECT count(*) FROM fold_clips WHERE split = 'dfew'"))
        finally:
            other.cleanup()

    def test_tensor_job_bad_frame(self):
        """A frame FFmpeg cannot decode fails its clip's tensor job for good,
        naming the file; the other clips get their tensors and dfewd serves on."""
        ids, specs = self.make_dataset(self.home, n=6, k=2)
        out = os.path.join(self.home.dir, 'release')
        self.home.ctl('export', '--format', 'dfew', out)
        bad = os.path.join(out, 'Clip/clip_112x112_16f/%05d/7.jpg' % ids[0])
        with open(bad, 'wb') as f:
            f.write(b'not a JPEG at all')
        other = Home()
        try:
            other.start()
            r = other.ctl_json('import', 'dfew', out)
            self.assertEqual(r['tensor_jobs_queued'], 5)
            self.assertEqual(other.ctl('wait', '--timeout', '120', check=False).returncode, 1)  # one job is dead
            rows = other.query("SELECT j.state, j.error, c.name, c.tensor_path FROM jobs j JOIN clips c "
                               "ON c.id = j.clip_id WHERE j.kind = 'tensor' ORDER BY c.name")
            self.assertEqual([(x['name'], x['state']) for x in rows],
                             [('%05d' % ids[0], 'dead')] + [('%05d' % i, 'done') for i in ids[1:5]])
            print('the dead tensor job says: %s' % rows[0]['error'])
            self.assertIn(bad, rows[0]['error'])
            self.assertIn('frame 7', rows[0]['error'])
            self.assertIsNone(rows[0]['tensor_path'])
            self.assertTrue(all(x['tensor_path'] for x in rows[1:]))
            self.assertTrue(other.ping())
        finally:
            other.cleanup()

    def test_while_dfewd_runs(self):
        self.home.start()
        ids, specs = self.make_dataset(self.home, n=9, k=3)
        out = os.path.join(self.home.dir, 'release')
        self.home.ctl('export', '--format', 'dfew', out)
        self.assertTrue(os.path.isdir(os.path.join(out, 'Clip/clip_112x112_16f')))
        job = self.home.ctl_json('noop')['first_id']
        self.assertEqual(self.home.ctl('wait', '--timeout', '30', job).returncode, 0)
        self.assertTrue(self.home.ping())


if __name__ == '__main__':
    main()
