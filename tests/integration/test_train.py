"""Integration: training runs end to end through a real dfewd, on real clip
tensors. Twenty clips are cut from the four labelled MEAD test videos
(happy, fear, disgusted, surprised; five 0.4 s clips each) and prepared by
the real prep job at 32 x 32 pixels and 8 frames, labelled with votes and
split into 5 folds. Then, on the CPU backend, through the trainer slot:

- run 1: `dfewctl train --folds all` (3D ResNet-18 at width 1/8, CE + 10
  EC-STFL, 28 x 28 random crops + flips, 3 epochs): runs, folds, epochs and
  predictions in the database; the stored per-fold and pooled metrics equal a
  recomputation in Python from the stored predictions and the worker's own
  numbers (metrics.c); `dfewctl metrics` prints them as the paper's Table 4;
  `dfewctl metrics --plot` writes a PNG whose cells have the colours of the
  confusion matrix; the worker ran OpenBLAS's kernels for this CPU;
- run 2: the same run on fold 1, stopped in the middle of epoch 2 (the
  job's stall_at failure injection) and its worker killed with SIGKILL: the
  retry resumes from the epoch-1 checkpoint, not from epoch 0, and ends with
  exactly run 1's fold-1 losses and probabilities; while it trains, the
  general workers keep running other jobs and `dfewctl status` / `runs`
  show its progress;
- run 3: --backend auto picks the CPU on a machine without a GPU;
- bad arguments (unknown split, folds out of range, a split with a clip
  that has no tensor, a crop larger than the clips, ...) fail clearly and
  queue nothing."""
import json
import os
import signal
import struct
import subprocess
import time
import zlib

from dfewtest import BUILD, SLOW, Home, SharedHomeTest, main, video
from labeltest import EMOTIONS, write_wide

VIDEOS = {'happy.mp4': 'happy', 'fear.mp4': 'fear', 'disgusted.mp4': 'disgust', 'surprised.mp4': 'surprise'}
COLS = ['p_' + e for e in EMOTIONS]
TRAIN = ['--width', '0.125', '--epochs', '3', '--batch', '8', '--crop', '28', '--threads', '1', '--seed', '7',
         '--loss', 'ecstfl', '--patience', '0']


def metrics(rows):
    """Per-class recall (classes with clips), UAR, WAR of (label, pred) pairs."""
    support, correct = {}, {}
    for label, pred in rows:
        support[label] = support.get(label, 0) + 1
        correct[label] = correct.get(label, 0) + (label == pred)
    recall = {k: correct[k] / support[k] for k in support}
    return recall, sum(recall.values()) / len(recall), sum(correct.values()) / len(rows)


def read_png(path):
    """A PNG's width, height and RGB rows (8-bit RGB, non-interlaced), decoded
    with zlib and the five PNG row filters."""
    with open(path, 'rb') as f:
        data = f.read()
    assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
    pos, idat, ihdr = 8, b'', None
    while pos < len(data):
        n, kind = struct.unpack_from('>I4s', data, pos)
        body = data[pos + 8:pos + 8 + n]
        assert zlib.crc32(kind + body) == struct.unpack_from('>I', data, pos + 8 + n)[0], 'bad CRC'
        if kind == b'IHDR':
            ihdr = struct.unpack('>IIBBBBB', body)
        elif kind == b'IDAT':
            idat += body
        pos += 12 + n
    w, h, depth, ctype, _, _, interlace = ihdr
    assert (depth, ctype, interlace) == (8, 2, 0), ihdr
    raw, stride, rows, prev = zlib.decompress(idat), w * 3, [], bytearray(w * 3)
    for y in range(h):
        ft, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride if ft else 0):
            a = line[i - 3] if i >= 3 else 0
            b, c = prev[i], prev[i - 3] if i >= 3 else 0
            if ft == 1:
                line[i] = (line[i] + a) & 255
            elif ft == 2:
                line[i] = (line[i] + b) & 255
            elif ft == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ft == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, rows


class TrainTest(SharedHomeTest):
    @classmethod
    def setUpClass(cls):
        paths = {name: video('mead_eamm/' + name) for name in VIDEOS}
        cls.t0 = time.time()
        cls.home = h = Home(config='[prep]\nsize = 32\nframes = 8\nkeep_aligned = no\n', workers=2)
        try:
            cls.prepare(h, paths)
            cls.run_all(h)
        except Exception:
            h.cleanup()
            raise

    @classmethod
    def prepare(cls, h, paths):
        cuts = os.path.join(h.dir, 'cuts.csv')
        with open(cuts, 'w') as f:
            f.write(''.join('%d,%d.4\n' % (s, s) for s in range(5)))
        h.start()
        for p in paths.values():
            h.ctl('submit', p, '--clips', cuts)
        h.ctl('wait', '--timeout', str(300 * SLOW), timeout=400)
        cls.prep_s = time.time() - cls.t0
        clips = h.query("SELECT c.id, m.source FROM clips c JOIN movies m ON m.id = c.movie_id "
                        "WHERE c.state = 'usable' ORDER BY c.id")
        assert len(clips) == 20, 'expected 20 usable clips, got %s' % h.query('SELECT * FROM clip_status')
        votes = []
        for c in clips:
            counts = [0] * 7
            counts[EMOTIONS.index(VIDEOS[os.path.basename(c['source'])])] = 8
            counts[EMOTIONS.index('neutral')] += 2
            votes.append((c['id'], counts))
        write_wide(os.path.join(h.dir, 'votes.csv'), votes)
        h.ctl('labels', 'import', os.path.join(h.dir, 'votes.csv'))
        h.ctl('folds', 'make', '--k', '5', '--name', 'mead5')
        cls.labels = {r['clip_id']: (r['fold'], r['label']) for r in h.query(
            "SELECT clip_id, fold, label FROM fold_clips WHERE split = 'mead5'")}

    @classmethod
    def run_all(cls, h):
        # Queue with the daemon stopped, so that run 2's job can get its
        # failure injection before anything leases it.
        h.stop()
        cls.run1 = h.ctl_json('train', '--split', 'mead5', '--backend', 'cpu', *TRAIN)
        cls.run2 = h.ctl_json('train', '--split', 'mead5', '--folds', '1', '--backend', 'cpu', *TRAIN)
        cls.run3 = h.ctl_json('train', '--split', 'mead5', '--folds', '2', '--epochs', '1', '--width', '0.125',
                              '--batch', '8', '--threads', '1', '--loss', 'ce')
        job2 = cls.run2['jobs'][0]
        con = h.db()
        with con:
            con.execute("UPDATE jobs SET args = json_set(args, '$.stall_at', '2:1') WHERE id = ?", (job2,))
        con.close()
        t_train = time.time()
        h.start()
        marker = os.path.join(cls.run2['out_dir'], 'fold-1.stall')
        h.wait_for(lambda: os.path.exists(marker), 120, 'run 2 to stall in epoch 2')
        with open(marker) as f:
            pid = int(f.read())
        # while the trainer slot trains, the general workers run other work
        h.ctl('noop', '--count', '3')
        h.wait_for(lambda: h.scalar("SELECT count(*) FROM jobs WHERE kind = 'noop' AND state = 'done'") == 3, 30,
                   'noop jobs on the general workers')
        cls.train_state_during_noop = h.scalar('SELECT state FROM jobs WHERE id = ?', job2)
        h.wait_for(lambda: 'stalled' in (h.scalar('SELECT progress_msg FROM jobs WHERE id = ?', job2) or ''), 10,
                   'the progress message')
        cls.status = h.ctl('status', '--once').stdout
        cls.runs_text = h.ctl('runs').stdout
        cls.daemon = h.daemon_status()
        cls.stalled_pid = pid
        os.kill(pid, signal.SIGKILL)
        h.ctl('wait', '--timeout', str(300 * SLOW), timeout=400)
        cls.train_s = time.time() - t_train

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        print('\n  prepared 20 clips in %.1f s; three runs (11 folds) trained in %.1f s; whole test %.1f s'
              % (cls.prep_s, cls.train_s, time.time() - cls.t0))

    def preds(self, run, fold=None):
        sql = 'SELECT * FROM predictions WHERE run_id = ?' + (' AND fold = ?' if fold else '') + ' ORDER BY clip_id'
        return self.home.query(sql, *((run, fold) if fold else (run,)))

    # ---- run 1 ----

    def test_run_rows_and_predictions(self):
        h, run = self.home, self.run1['run_id']
        self.assertEqual(len(self.run1['jobs']), 5)
        s = h.query('SELECT * FROM run_summary WHERE run_id = ?', run)[0]
        self.assertEqual((s['state'], s['folds'], s['folds_done'], s['backend'], s['model'], s['loss'], s['lambda'],
                          s['input'], s['clips']), ('done', 5, 5, 'cpu', 'r3d18', 'ecstfl', 10.0, '8x28x28', 20))
        r = h.query('SELECT * FROM runs WHERE id = ?', run)[0]
        self.assertEqual((r['frames'], r['clip_height'], r['clip_width'], r['crop'], r['epochs'], r['batch'],
                          r['threads'], r['seed'], r['split'], r['folds']), (8, 32, 32, 28, 3, 8, 1, 7, 'mead5',
                                                                            '1,2,3,4,5'))
        folds = h.query('SELECT * FROM run_folds WHERE run_id = ? ORDER BY fold', run)
        for f in folds:
            self.assertEqual((f['train_clips'], f['test_clips'], f['epochs_done'], f['resumed_from']), (16, 4, 3, 0))
            self.assertEqual(f['backend'], 'cpu')
            self.assertIn('threads', f['device'])
            self.assertGreater(f['clips_per_s'], 0)
            self.assertEqual(h.scalar("SELECT state FROM jobs WHERE id = ?", f['job_id']), 'done')
            self.assertTrue(os.path.exists(os.path.join(self.run1['out_dir'], 'fold-%d.ckpt' % f['fold'])))
        # every clip of the split once, in its own fold, with its label; probabilities sum to 1, pred = argmax
        p = self.preds(run)
        self.assertEqual({x['clip_id']: (x['fold'], x['label']) for x in p}, self.labels)
        for x in p:
            probs = [x[c] for c in COLS]
            self.assertAlmostEqual(sum(probs), 1.0, places=5)
            self.assertEqual(x['pred'], probs.index(max(probs)) + 1)
        # three epochs per fold; the learning rate follows the plateau schedule (patience 0: lr / 10 after
        # every epoch whose loss is not below the best so far)
        ep = h.query('SELECT * FROM train_epochs WHERE run_id = ? ORDER BY fold, epoch', run)
        self.assertEqual([(e['fold'], e['epoch']) for e in ep], [(f, e) for f in range(1, 6) for e in (1, 2, 3)])
        drops = 0
        for fold in range(1, 6):
            lr, best = 0.001, float('inf')
            for e in [e for e in ep if e['fold'] == fold]:
                self.assertTrue(0 <= e['accuracy'] <= 1 and e['loss'] > 0 and e['ce'] > 0, e)
                self.assertAlmostEqual(e['loss'], e['ce'] + 10 * e['aux'], places=4)
                self.assertAlmostEqual(e['lr'], lr, delta=lr * 1e-6)
                if e['loss'] < best * (1 - 1e-4):
                    best = e['loss']
                else:
                    lr, drops = lr * 0.1, drops + 1
        print('\n  the learning rate dropped %d times in 15 epochs' % drops)

    def test_metrics_equal_a_recomputation(self):
        h, run = self.home, self.run1['run_id']
        p = self.preds(run)
        fm = {r['fold']: r for r in h.query('SELECT * FROM fold_metrics WHERE run_id = ?', run)}
        self.assertEqual(sorted(fm), [1, 2, 3, 4, 5])
        names = EMOTIONS
        for fold in range(1, 6):
            recall, uar, war = metrics([(x['label'], x['pred']) for x in p if x['fold'] == fold])
            row = fm[fold]
            self.assertAlmostEqual(row['uar'], uar, places=12)
            self.assertAlmostEqual(row['war'], war, places=12)
            for k, name in enumerate(names, 1):
                if k in recall:
                    self.assertAlmostEqual(row[name], recall[k], places=12)
                else:
                    self.assertIsNone(row[name], 'a class without test clips has no recall')
            # the worker's own numbers (metrics.c, float32) agree with the SQL views
            res = json.loads(h.scalar('SELECT result FROM jobs WHERE id = ?', self.run1['jobs'][fold - 1]))
            self.assertAlmostEqual(res['uar'], uar, places=5)
            self.assertAlmostEqual(res['war'], war, places=5)
        recall, uar, war = metrics([(x['label'], x['pred']) for x in p])  # pooled over the five folds
        s = h.query('SELECT * FROM run_summary WHERE run_id = ?', run)[0]
        self.assertAlmostEqual(s['uar'], uar, places=12)
        self.assertAlmostEqual(s['war'], war, places=12)
        for k, name in enumerate(names, 1):
            self.assertEqual(s[name] is None, k not in recall)
            if k in recall:
                self.assertAlmostEqual(s[name], recall[k], places=12)
        # the pooled confusion matrix
        conf = h.query('SELECT * FROM confusion WHERE run_id = ? AND fold IS NULL ORDER BY label', run)
        for row in conf:
            for q, name in enumerate(names, 1):
                self.assertEqual(row[name], sum(1 for x in p if x['label'] == row['label'] and x['pred'] == q))
        # dfewctl metrics --json carries the same numbers
        j = h.ctl_json('metrics', run)
        self.assertEqual(j['run']['uar'], s['uar'])
        self.assertEqual([f['uar'] for f in j['folds']], [fm[f]['uar'] for f in range(1, 6)])
        self.assertEqual(len(j['confusion']), 7)

    def test_metrics_table(self):
        h, run = self.home, self.run1['run_id']
        out = h.ctl('metrics', run).stdout
        print('\n' + out)
        lines = out.splitlines()
        self.assertTrue(lines[0].startswith('run %d: r3d18, ecstfl (lambda 10)' % run), lines[0])
        self.assertIn('5 of 5 folds done', lines[0])
        head = lines[1].split()
        self.assertEqual(head, ['fold', 'clips', 'Happy', 'Sad', 'Neutral', 'Angry', 'Surprise', 'Disgust', 'Fear',
                                'UAR', 'WAR', 'backend'])
        rows = [l.split() for l in lines[2:]]
        self.assertEqual([r[0] for r in rows], ['1', '2', '3', '4', '5', 'pooled'])
        s = h.query('SELECT * FROM run_summary WHERE run_id = ?', run)[0]
        pooled = dict(zip(head, rows[-1]))
        self.assertEqual(pooled['UAR'], '%.2f' % (100 * s['uar']))
        self.assertEqual(pooled['WAR'], '%.2f' % (100 * s['war']))
        self.assertEqual((pooled['Sad'], pooled['Neutral'], pooled['Angry']), ('-', '-', '-'))  # no such test clips
        self.assertEqual(pooled['clips'], '20')

    def test_metrics_plot_png(self):
        h, run = self.home, self.run1['run_id']
        out = os.path.join(h.dir, 'confusion.png')
        j = h.ctl_json('metrics', run, '--plot', out)
        self.assertEqual(j['plot'], out)
        w, ht, rows = read_png(out)
        self.assertEqual((w, ht), (128 + 7 * 104 + 24, 96 + 7 * 104 + 48))
        probe = json.loads(subprocess.run(['ffprobe', '-v', 'error', '-show_entries', 'stream=codec_name,width,height',
                                           '-of', 'json', out], check=True, capture_output=True, text=True).stdout)
        self.assertEqual(probe['streams'][0]['codec_name'], 'png')
        conf = h.query('SELECT * FROM confusion WHERE run_id = ? AND fold IS NULL ORDER BY label', run)
        for t, row in enumerate(conf):
            counts = [row[e] for e in EMOTIONS]
            for q in range(7):
                f = counts[q] / sum(counts) if sum(counts) else 0
                want = (int(247 - f * 239), int(251 - f * 203), int(255 - f * 148))
                x, y = 128 + q * 104 + 4, 96 + t * 104 + 4  # a cell's corner: fill colour, no text
                self.assertEqual(tuple(rows[y][3 * x:3 * x + 3]), want, 'cell %d,%d' % (t, q))
        # one fold, and a fold without predictions
        h.ctl('metrics', run, '--plot', out, '--fold', '2')
        r = h.ctl('metrics', self.run3['run_id'], '--plot', out, '--fold', '1', check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('has no predictions', r.stderr)
        self.assertFalse([n for n in os.listdir(h.dir) if n.startswith('confusion.png.tmp')])

    def test_openblas_kernels_for_this_cpu(self):
        with open('/proc/cpuinfo') as f:
            flags = next(l for l in f if l.startswith('flags')).split()
        want = os.environ.get('OPENBLAS_CORETYPE')
        if not want:
            if all(x in flags for x in ('avx512f', 'avx512bw', 'avx512dq', 'avx512vl')):
                want = 'SkylakeX'
            elif 'avx2' in flags and 'fma' in flags:
                want = 'Haswell'
            else:
                self.skipTest('this CPU has neither AVX-512 nor AVX2: OpenBLAS picks its kernels itself')
        cores = {r['blas_core'] for r in self.home.query('SELECT blas_core FROM run_folds WHERE backend = ?', 'cpu')}
        self.assertEqual(cores, {want})
        if not os.environ.get('OPENBLAS_CORETYPE'):
            self.assertIn('workers get OPENBLAS_CORETYPE=%s' % want, self.home.log())

    # ---- run 2: killed mid-epoch, resumed ----

    def test_killed_mid_epoch_resumes_with_identical_results(self):
        h, run, job = self.home, self.run2['run_id'], self.run2['jobs'][0]
        f = h.query('SELECT * FROM run_folds WHERE run_id = ?', run)[0]
        self.assertEqual(h.scalar('SELECT attempts FROM jobs WHERE id = ?', job), 2)
        trail = h.trail(job)
        self.assertEqual(trail, ['queued', 'leased', 'queued', 'leased', 'done'], trail)
        self.assertIn('killed by signal 9', h.scalar("SELECT message FROM events WHERE job_id = ? AND id = "
                                                     "(SELECT min(id) FROM events WHERE job_id = ? AND "
                                                     "from_state = 'leased')", job, job))
        self.assertEqual(f['resumed_from'], 1, 'the retry started from the epoch-1 checkpoint, not from epoch 0')
        self.assertIn('resuming fold 1', h.log())
        # identical to the undisturbed fold 1 of run 1: every epoch's loss, every probability
        cols = 'epoch, loss, ce, aux, accuracy, lr'
        a = h.query('SELECT %s FROM train_epochs WHERE run_id = ? AND fold = 1 ORDER BY epoch' % cols,
                    self.run1['run_id'])
        b = h.query('SELECT %s FROM train_epochs WHERE run_id = ? AND fold = 1 ORDER BY epoch' % cols, run)
        self.assertEqual(len(b), 3)
        self.assertEqual(a, b)
        pa = [[x['clip_id'], x['pred']] + [x[c] for c in COLS] for x in self.preds(self.run1['run_id'], 1)]
        pb = [[x['clip_id'], x['pred']] + [x[c] for c in COLS] for x in self.preds(run, 1)]
        self.assertEqual(pa, pb)

    def test_progress_and_slots_while_training(self):
        self.assertEqual(self.train_state_during_noop, 'leased', 'noop jobs ran while the train job held its slot')
        self.assertIn('1 trainer slot(s), 1 busy', self.status)
        self.assertRegex(self.status, r'train .*run %d fold 1 cpu: epoch 2/3 step 1: stalled' % self.run2['run_id'])
        trainers = self.daemon['trainers']
        self.assertEqual(len(trainers), 1)
        self.assertEqual((trainers[0]['pid'], trainers[0]['kind']), (self.stalled_pid, 'train'))
        self.assertEqual(len(self.daemon['workers']), 2)
        self.assertTrue(all(w.get('kind') != 'train' for w in self.daemon['workers']))
        line = [l for l in self.runs_text.splitlines() if l.split()[:1] == [str(self.run2['run_id'])]][0]
        self.assertIn('running', line)
        self.assertIn('epoch 2/3', line)

    # ---- run 3: backend auto ----

    def test_auto_backend(self):
        h = self.home
        cuda = os.path.exists(os.path.join(BUILD, 'workers', 'train', 'dfew-train-cuda.so')) and \
            os.path.exists('/dev/nvidiactl')
        f = h.query('SELECT * FROM run_folds WHERE run_id = ?', self.run3['run_id'])[0]
        self.assertEqual(f['backend'], 'cuda' if cuda else 'cpu')
        self.assertEqual(h.query('SELECT loss, lambda FROM runs WHERE id = ?', self.run3['run_id'])[0],
                         {'loss': 'ce', 'lambda': 0.0})
        out = h.ctl('runs').stdout.splitlines()
        self.assertEqual(out[0].split()[:4], ['run', 'split', 'model', 'loss'])
        self.assertEqual(len(out), 4)

    # ---- cancel and retry a whole run ----

    def test_cancel_and_retry_a_run(self):
        h = self.home
        run = h.ctl_json('train', '--split', 'mead5', '--folds', '1-2', '--epochs', '1', '--width', '0.125',
                         '--batch', '8', '--crop', '16', '--threads', '1', '--loss', 'ce', '--backend', 'cpu')
        c = h.ctl_json('cancel', '--run', run['run_id'])  # one may be running already: its worker stops
        self.assertEqual((c['run'], c['cancelled']), (run['run_id'], 2))
        self.assertEqual([j['id'] for j in c['jobs']], run['jobs'])
        self.assertEqual([h.scalar('SELECT state FROM jobs WHERE id = ?', j) for j in run['jobs']],
                         ['cancelled', 'cancelled'])
        again = h.ctl('cancel', '--run', run['run_id'])
        self.assertIn('run %d: 0 of 2 fold jobs cancelled' % run['run_id'], again.stdout)
        r = h.ctl_json('retry', '--run', run['run_id'])
        self.assertEqual(r['queued'], 2)
        self.assertEqual(h.ctl('wait', '--timeout', str(120 * SLOW), *run['jobs'], timeout=200).returncode, 0)
        self.assertEqual(h.scalar('SELECT count(*) FROM run_folds WHERE run_id = ? AND finished_at IS NOT NULL',
                                  run['run_id']), 2)
        self.assertEqual(h.ctl_json('retry', '--run', run['run_id'])['queued'], 0)  # done: nothing to retry
        for args, msg in ((['--run', '999'], 'no such run'), (['--run', 'x'], "--run 'x' is not a run id"),
                          (['1', '--run', '1'], 'not both')):
            bad = h.ctl('cancel', *args, check=False)
            self.assertNotEqual(bad.returncode, 0, args)
            self.assertIn(msg, bad.stderr, args)

    # ---- bad arguments ----

    def test_bad_arguments_queue_nothing(self):
        h = self.home

        def snapshot():
            return (h.scalar('SELECT count(*) FROM runs'), h.scalar('SELECT count(*) FROM jobs'),
                    sorted(os.listdir(os.path.join(h.dir, 'outputs', 'train'))))

        before = snapshot()
        cases = [
            (['--split', 'nope'], 1, "no split named 'nope'"),
            (['--split', 'mead5', '--folds', '6'], 2, 'fold 6 is not in the split (it has folds 1..5)'),
            (['--split', 'mead5', '--folds', '0-2'], 2, 'fold 0 is not in the split'),
            (['--split', 'mead5', '--folds', 'x'], 2, '--folds wants all, or folds such as'),
            (['--split', 'mead5', '--loss', 'focal'], 2, '--loss wants ce, ecstfl, ecstfl_l1 or center'),
            (['--split', 'mead5', '--loss', 'ce', '--lambda', '1'], 2, 'has no extra term'),
            (['--split', 'mead5', '--crop', '40'], 1, '--crop 40 is larger than the clips (32x32)'),
            (['--split', 'mead5', '--model', 'c3d'], 1, 'C3D needs clips of at least 16 frames'),
            (['--crop', '40'], 1, '--crop 40 is larger'),  # the only split, mead5, without --split
        ]
        for args, code, msg in cases:
            r = h.ctl('train', *args, check=False)
            self.assertEqual(r.returncode, code, (args, r.stderr))
            self.assertIn(msg, r.stderr, args)
        # a split with a clip that has no tensor (never prepared)
        con = h.db()
        with con:
            movie = con.execute('SELECT min(id) FROM movies').fetchone()[0]
            cur = con.execute("INSERT INTO clips (movie_id, start_s, end_s, state, created_at, updated_at) "
                              "VALUES (?, 100, 101, 'usable', 0, 0)", (movie,))
            clip = cur.lastrowid
        con.close()
        write_wide(os.path.join(h.dir, 'v2.csv'), [(clip, [0, 9, 1, 0, 0, 0, 0])])
        h.ctl('labels', 'import', os.path.join(h.dir, 'v2.csv'))
        h.ctl('folds', 'make', '--k', '5', '--name', 'with-untensored')
        r = h.ctl('train', '--split', 'with-untensored', check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('1 of the 21 clips of split \'with-untensored\' have no clip tensor', r.stderr)
        self.assertIn('clip %d' % clip, r.stderr)
        self.assertIn('Nothing was queued', r.stderr)
        # two splits: train without --split names them and queues nothing; the official one is taken
        r = h.ctl('train', check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("there are 2 splits ('mead5', 'with-untensored') and none is the official 'dfew' one",
                      r.stderr)
        con = h.db()
        with con:
            con.execute("UPDATE splits SET name = 'dfew' WHERE name = 'with-untensored'")
        con.close()
        h.ctl('folds', 'make', '--k', '5', '--seed', '3', '--name', 'newer')
        r = h.ctl('train', check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("clips of split 'dfew' have no clip tensor", r.stderr)
        self.assertEqual(snapshot(), before)


if __name__ == '__main__':
    main()
