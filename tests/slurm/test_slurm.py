"""Integration: dfewd's Slurm executor ([executor] kind = slurm) against a
real one-node Slurm cluster (Debian's slurm-wlm 22.05 and munge, started by
tests/slurm/cluster.sh for this file and stopped at its end, whatever
happens). Skipped, with the reason, where the cluster cannot start (not
root, packages missing).

- A movie's probe, segment and prep jobs run as Slurm jobs, after the
  start-up storage check; the clips and every output file are byte for byte
  those of a local run of the same movie; dfew-worker, what runs on the
  node, has no SQLite in it (so the node never opens the database).
- The storage check refuses to start, naming the path a node cannot read,
  or HOME/outputs when it is not a folder a node can write in.
- [slurm] partition, account, time_KIND, cpus_KIND, mem_KIND and options
  reach sbatch (scontrol show job says them); max_jobs caps the Slurm jobs
  in flight.
- sbatch refusing a job (no such partition): failed attempts with Slurm's
  message, then dead; dfewd goes on (a reload, and the next job runs).
- dfewctl cancel of a running job: scancel, the job cancelled, its process
  on the node gone, nothing recorded.
- The node set DOWN mid-job: a failed attempt with Slurm's reason
  (NODE_FAIL) in the job's events, retried once the node is back, done
  exactly once.
- dfewd killed (SIGKILL) while Slurm jobs run and started again: it adopts
  them and records their results (one that ended meanwhile too), each
  attempt once.
- A Slurm-side requeue ([slurm] options = --requeue, the node DOWN) stays
  the same attempt.
- dfewctl status shows the Slurm job, its state and node, and its progress
  (the JSON's slot, and the running job's line of the text).
- SIGTERM: the running job gets drain_seconds, then scancel; its attempt is
  given back.
- Bad [slurm] and [executor] values: dfewd refuses to start, naming the key.
- SlurmTrainTest (meson test slurm_train): twenty MEAD clips prepared on
  Slurm, then `dfewctl train --folds all`: each fold its own Slurm job with
  --gres=gpu:1 (the test node offers five fake GPUs); the node set DOWN
  while fold 1 waits in epoch 2: its retry resumes from the epoch-1
  checkpoint; every fold done, each recorded once."""
import atexit
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'integration'))
from dfewtest import BUILD, SLOW, Home, main, video  # noqa: E402

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'cluster.sh')
CLUSTER = {}  # dir, node


def cluster_start():
    """Starts the cluster; None when up, else why not (a skip) or raises."""
    d = tempfile.mkdtemp(prefix='dfew-slurm-')
    r = subprocess.run(['bash', FIXTURE, 'start', d], capture_output=True, text=True, timeout=120)
    if r.returncode == 77:
        os.rmdir(d) if not os.listdir(d) else None
        return r.stderr.strip() or 'the test Slurm cluster cannot run here'
    CLUSTER['dir'] = d
    atexit.register(cluster_stop)
    if r.returncode != 0:
        raise RuntimeError('tests/slurm/cluster.sh start failed (%d):\n%s' % (r.returncode, r.stderr))
    os.environ['SLURM_CONF'] = os.path.join(d, 'slurm.conf')
    CLUSTER['node'] = slurm('sinfo', '-h', '-o', '%N').strip()
    return None


def cluster_stop():
    d = CLUSTER.pop('dir', None)
    if d:
        subprocess.run(['bash', FIXTURE, 'stop', d], timeout=120)
        subprocess.run(['rm', '-rf', d])


def slurm(*args):
    return subprocess.run(list(args), capture_output=True, text=True, check=True, timeout=60).stdout


def slurm_state(slurm_id):
    out = slurm('squeue', '--noheader', '--states=all', '--jobs=%d' % slurm_id, '--format=%T|%r')
    return out.strip().split('|') if out.strip() else ['', '']


def stepd_alive(slurm_id):
    """Whether a slurmstepd of the Slurm job still runs on this machine."""
    tag = b'slurmstepd: [%d.' % slurm_id
    for pid in os.listdir('/proc'):
        if pid.isdigit():
            try:
                with open('/proc/%s/cmdline' % pid, 'rb') as f:
                    if f.read().startswith(tag):
                        return True
            except OSError:
                pass
    return False


def node_state():
    return slurm('sinfo', '-h', '-n', CLUSTER['node'], '-o', '%T').strip()


def set_node(state, reason=None):
    args = ['scontrol', 'update', 'nodename=' + CLUSTER['node'], 'state=' + state]
    if reason:
        args.append('reason=' + reason)
    slurm(*args)


def tree_digests(root):
    """{relative path: sha256} of every file under root."""
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            with open(p, 'rb') as fh:
                out[os.path.relpath(p, root)] = hashlib.sha256(fh.read()).hexdigest()
    return out


SLURM_CONF = '[executor]\nkind = slurm\n[slurm]\npoll_interval = 0.3s\n'


class SlurmBase(unittest.TestCase):
    def home(self, config='', prep=False, slurm=True):
        h = Home((SLURM_CONF if slurm else '') + config, workers=0 if slurm else 2, prep=prep)
        self.addCleanup(h.cleanup)
        return h

    def slot_of(self, h, job):
        st = h.daemon_status()
        for w in st['workers'] + st.get('trainers', []):
            if w.get('job') == job:
                return w
        return None

    def wait_running(self, h, job):
        """Waits until Slurm runs job (dfewctl status says so); its slot."""
        h.wait_for(lambda: (self.slot_of(h, job) or {}).get('slurm_state') == 'RUNNING', 60,
                   'job %d to run in Slurm' % job)
        return self.slot_of(h, job)

    def events(self, h, job):
        return h.query('SELECT from_state, to_state, message FROM events WHERE job_id = ? ORDER BY id', job)


class SlurmTest(SlurmBase):
    def test_pipeline_same_outputs_as_local(self):
        movie = video('short_hamilton_clip.mp4')
        homes = {'slurm': self.home(prep=True), 'local': self.home(prep=True, slurm=False)}
        for h in homes.values():
            h.ctl('submit', movie)
            h.start()
        for h in homes.values():
            h.ctl('wait', '--timeout', str(300 * SLOW), timeout=300 * SLOW + 60)
        s, loc = homes['slurm'], homes['local']
        kinds = s.query("SELECT kind, count(*) AS n FROM jobs WHERE state = 'done' GROUP BY kind ORDER BY kind")
        self.assertEqual([(k['kind'], k['n']) for k in kinds if k['kind'] != 'prep'], [('probe', 1), ('segment', 1)])
        nprep = s.scalar("SELECT count(*) FROM jobs WHERE kind = 'prep' AND state = 'done'")
        self.assertGreater(nprep, 0)
        self.assertEqual(s.scalar("SELECT count(*) FROM jobs WHERE state != 'done'"), 0)
        log = s.log()
        self.assertIn('storage check passed', log)
        # every job ran as a Slurm job, once
        for j in s.query('SELECT id, kind, attempts FROM jobs'):
            self.assertEqual(j['attempts'], 1, j)
            self.assertRegex(log, r'job=%d %s submitted as Slurm job \d+' % (j['id'], j['kind']))
        # no job folder left behind
        self.assertEqual(os.listdir(os.path.join(s.dir, 'slurm')), [])
        # and the database never opened on the node: what runs there (dfew-worker) has no SQLite in it
        self.assertWorkerHasNoSqlite()
        # the same clips and the same bytes as the local run
        q = 'SELECT start_s, end_s FROM clip_status ORDER BY start_s'
        self.assertEqual(s.query(q), loc.query(q))
        a, b = tree_digests(os.path.join(s.dir, 'outputs')), tree_digests(os.path.join(loc.dir, 'outputs'))
        self.assertGreater(len(a), nprep)  # the clip frames and faces, not an empty tree
        self.assertEqual(sorted(a), sorted(b))
        for p in a:
            self.assertEqual(a[p], b[p], 'outputs/%s differs between the Slurm and the local run' % p)
        for h in homes.values():
            self.assertEqual(h.stop(), 0)

    def assertWorkerHasNoSqlite(self):
        worker = os.path.join(BUILD, 'dfew-worker')  # dfewd's worker program: the one beside it
        self.assertTrue(os.access(worker, os.X_OK), worker)
        dyn = subprocess.run(['readelf', '-d', worker], capture_output=True, text=True, check=True).stdout
        needed = re.findall(r'\(NEEDED\)\s+Shared library: \[([^\]]+)\]', dyn)
        self.assertTrue(any(n.startswith('libc.so') for n in needed), needed)  # the parse found the list
        self.assertFalse([n for n in needed if 'sqlite' in n], needed)
        syms = ''
        for flags in (['-D'], []):  # dynamic symbols, and the symbol table unless stripped
            r = subprocess.run(['nm'] + flags + [worker], capture_output=True, text=True)
            syms += r.stdout
        self.assertIn(' main', syms)  # nm did read it
        self.assertNotRegex(syms, r'\bsqlite3_open', 'dfew-worker can open an SQLite database')

    def test_storage_check_names_the_path_a_node_cannot_read(self):
        h = self.home()
        movie = os.path.join(h.dir, 'gone.mp4')
        with open(video('single_face.mp4'), 'rb') as f, open(movie, 'wb') as g:
            g.write(f.read())
        h.ctl('submit', movie)
        os.unlink(movie)  # queued, then gone: the probe job's node cannot read it
        h.start(wait_ready=False)
        rc = h.proc.wait(timeout=60 * SLOW)
        h.proc = None
        self.assertEqual(rc, 1)
        log = h.log()
        self.assertIn('not starting: the storage check: compute node', log)
        self.assertIn('cannot use the movie %s (No such file or directory)' % movie, log)
        self.assertEqual(h.scalar("SELECT state FROM jobs"), 'queued')

    def test_cancel_running_job_is_scancelled(self):
        h = self.home()
        h.start()
        job = h.ctl_json('noop', '--sleep-ms', '60000')['first_id']
        slot = self.wait_running(h, job)
        sid = slot['slurm_job']
        self.assertEqual(slot['node'], CLUSTER['node'])
        # the worker on the node says who it is once it runs
        folder = os.path.join(h.dir, 'slurm', os.listdir(os.path.join(h.dir, 'slurm'))[0])
        h.wait_for(lambda: os.path.exists(os.path.join(folder, 'worker')), 30, 'the worker to start on the node')
        with open(os.path.join(folder, 'worker')) as f:
            pid = int(f.read().split()[0].split('=')[1])
        self.assertTrue(os.path.exists('/proc/%d' % pid))
        h.ctl('cancel', job)
        h.wait_for(lambda: slurm_state(sid)[0] == 'CANCELLED', 30, 'Slurm job %d to be cancelled' % sid)
        h.wait_for(lambda: not os.path.exists('/proc/%d' % pid), 30, 'the worker on the node to end')
        h.wait_for(lambda: self.slot_of(h, job) is None, 30, 'the slot to let go of the job')
        self.assertEqual(h.scalar('SELECT state FROM jobs WHERE id = ?', job), 'cancelled')
        self.assertEqual(h.done_events(job), 0)
        self.assertIn('scancel %d' % sid, h.log())
        self.assertEqual(os.listdir(os.path.join(h.dir, 'slurm')), [])
        # the executor goes on with the next job
        nxt = h.ctl_json('noop')['first_id']
        h.ctl('wait', '--timeout', '60', nxt)
        self.assertEqual(h.scalar('SELECT state FROM jobs WHERE id = ?', nxt), 'done')
        self.assertEqual(h.stop(), 0)

    def node_down_and_back(self, h, job, requeued=False):
        slot = self.wait_running(h, job)
        set_node('down', 'dfew-test')
        try:
            h.wait_for(lambda: slurm_state(slot['slurm_job'])[0] != 'RUNNING', 30, 'Slurm to stop the job')
            # The node is this machine, so the run Slurm gave up on is still
            # being killed there; its batch-completion message must reach
            # slurmctld before the node is back. Otherwise Slurm may take it
            # for the end of the requeued run it has just started on the same
            # node and end the job FAILED (a one-node test cluster's race, not
            # a real node failure's).
            h.wait_for(lambda: not stepd_alive(slot['slurm_job']), 60, 'the stopped run to end on the node')
        finally:
            set_node('resume')
        h.wait_for(lambda: node_state().startswith(('idle', 'mixed', 'alloc')), 60, 'the node to come back')
        if requeued:
            # Slurm holds a requeued job back for two minutes; an administrator
            # (here the test) may let it start now
            h.wait_for(lambda: slurm_state(slot['slurm_job'])[0] == 'PENDING', 30, 'Slurm to requeue the job')
            slurm('scontrol', 'update', 'jobid=%d' % slot['slurm_job'], 'starttime=now')
        h.ctl("wait", "--timeout", "60", job, timeout=90)
        return slot

    def test_node_down_mid_job_is_a_failed_attempt_then_done_once(self):
        h = self.home('[queue]\nretry_base_seconds = 0.2\n')
        h.start()
        job = h.ctl_json('noop', '--sleep-ms', '4000', '--max-attempts', '3')['first_id']
        slot = self.node_down_and_back(h, job)
        self.assertEqual(h.scalar('SELECT state FROM jobs WHERE id = ?', job), 'done')
        self.assertEqual(h.scalar('SELECT attempts FROM jobs WHERE id = ?', job), 2)
        self.assertEqual(h.done_events(job), 1)
        # like a worker that died: back to the queue, the attempt counted
        self.assertEqual(h.trail(job), ['queued', 'leased', 'queued', 'leased', 'done'])
        failed = [e['message'] for e in self.events(h, job) if e['from_state'] == 'leased'][0]
        self.assertIn('Slurm job %d on %s ended NODE_FAIL' % (slot['slurm_job'], CLUSTER['node']), failed)
        # the result is the second attempt's
        self.assertEqual(json.loads(h.scalar('SELECT result FROM jobs WHERE id = ?', job))['attempt'], 2)
        self.assertEqual(h.stop(), 0)

    def test_slurm_requeue_is_the_same_attempt(self):
        h = self.home('options = --requeue\n')
        h.start()
        job = h.ctl_json('noop', '--sleep-ms', '4000')['first_id']
        slot = self.node_down_and_back(h, job, requeued=True)
        self.assertEqual(h.scalar('SELECT state FROM jobs WHERE id = ?', job), 'done')
        # on a failure, what dfewd saw (Slurm's states as squeue reported them)
        why = 'events %r; dfewd log:\n%s' % (self.events(h, job), h.log()[-4000:])
        self.assertEqual(h.scalar('SELECT attempts FROM jobs WHERE id = ?', job), 1, why)
        self.assertEqual(h.trail(job), ['queued', 'leased', 'done'], why)
        self.assertIn('Slurm requeued job %d' % slot['slurm_job'], h.log())
        self.assertEqual(h.stop(), 0)

    def test_dfewd_killed_and_restarted_adopts_running_jobs(self):
        h = self.home()
        h.start()
        short = h.ctl_json('noop', '--sleep-ms', '1500')['first_id']
        long = h.ctl_json('noop', '--sleep-ms', '6000', '--progress', '3')['first_id']
        sids = {j: self.wait_running(h, j)['slurm_job'] for j in (short, long)}
        h.kill9()
        # the short one ends while no dfewd is there
        h.wait_for(lambda: slurm_state(sids[short])[0] == 'COMPLETED', 60, 'the short job to end in Slurm')
        h.start()
        h.ctl('wait', '--timeout', '120', short, long)
        for j in (short, long):
            self.assertEqual(h.scalar('SELECT state FROM jobs WHERE id = ?', j), 'done')
            self.assertEqual(h.scalar('SELECT attempts FROM jobs WHERE id = ?', j), 1)
            self.assertEqual(h.trail(j), ['queued', 'leased', 'done'])
            self.assertIn('adopted Slurm job %d' % sids[j], h.log())
        self.assertEqual(slurm_state(sids[long])[0], 'COMPLETED')
        self.assertEqual(os.listdir(os.path.join(h.dir, 'slurm')), [])
        self.assertEqual(h.stop(), 0)

    def test_sigterm_drain_cancels_what_outlives_it(self):
        h = self.home('[daemon]\ndrain_seconds = 1\n')
        h.start()
        job = h.ctl_json('noop', '--sleep-ms', '60000')['first_id']
        sid = self.wait_running(h, job)['slurm_job']
        self.assertEqual(h.stop(), 0)
        self.assertEqual(slurm_state(sid)[0], 'CANCELLED')
        # given back, the attempt not counted (as a local worker's drain)
        self.assertEqual(h.scalar('SELECT state FROM jobs WHERE id = ?', job), 'queued')
        self.assertEqual(h.scalar('SELECT attempts FROM jobs WHERE id = ?', job), 0)
        self.assertEqual(os.listdir(os.path.join(h.dir, 'slurm')), [])

    def test_bad_slurm_config_is_refused_naming_the_key(self):
        cases = [('cpus_prep = 0\n', 'cpus_prep wants a number of CPUs'),
                 ('time_bogus = 1h\n', "'bogus' is not a job kind"),
                 ('mem = lots\n', 'mem wants a memory size'),
                 ('gres = gpu:1\n', 'gres is set per kind'),
                 ('partition = a b\n', 'is not a Slurm name'),
                 ('options = --qos=x extra\n', "'extra' is not an sbatch option"),
                 ('colour = red\n', "unknown key 'colour' in [slurm]")]
        for text, want in cases:
            h = self.home(text)
            h.start(wait_ready=False)
            rc = h.proc.wait(timeout=30 * SLOW)
            h.proc = None
            self.assertNotEqual(rc, 0, text)
            self.assertIn(want, h.log(), text)
        # and kind = something else
        h = self.home()
        h.write_config('[executor]\nkind = cloud\n')
        h.start(wait_ready=False)
        self.assertNotEqual(h.proc.wait(timeout=30 * SLOW), 0)
        h.proc = None
        self.assertIn('local|slurm', h.log())

    def test_resources_reach_sbatch(self):
        cpus = min(2, int(slurm('sinfo', '-h', '-n', CLUSTER['node'], '-o', '%c').strip()))
        # no accounting database on the test cluster: Slurm takes any account name and shows it
        h = self.home('partition = debug\naccount = dfewlab\ntime_noop = 5m\ncpus_noop = %d\nmem_noop = 100M\n'
                      'options = --comment=dfew-test\n' % cpus)
        h.start()
        job = h.ctl_json('noop', '--sleep-ms', '500')['first_id']
        h.ctl('wait', '--timeout', '60', job)
        self.assertEqual(h.scalar('SELECT state FROM jobs WHERE id = ?', job), 'done')
        found = re.search(r'job=%d noop submitted as Slurm job (\d+)' % job, h.log())
        self.assertTrue(found, h.log()[-3000:])
        sid = found.group(1)
        show = slurm('scontrol', 'show', 'job', sid)  # Slurm keeps an ended job for MinJobAge
        for want in ('Partition=debug', 'Account=dfewlab', 'TimeLimit=00:05:00', 'NumCPUs=%d' % cpus,
                     'MinMemoryNode=100M', 'Comment=dfew-test', 'Requeue=0'):
            self.assertRegex(show, r'(^|\s)%s(\s|$)' % re.escape(want), show)
        self.assertEqual(h.stop(), 0)

    def test_max_jobs_caps_in_flight(self):
        h = self.home('max_jobs = 2\ncheck_storage = no\n')  # not its subject: a faster start
        h.start()
        first = h.ctl_json('noop', '--count', '5', '--sleep-ms', '2000')['first_id']
        jobs = list(range(first, first + 5))
        # a Slurm job is in flight for dfewd from sbatch until dfewd took its
        # result (then its folder goes): squeue's live jobs of this home
        # whose folder has no result yet
        seen, peak = set(), 0
        deadline = time.time() + 120 * SLOW
        while h.scalar("SELECT count(*) FROM jobs WHERE state = 'done'") < 5:
            self.assertLess(time.time(), deadline, 'the five jobs did not finish:\n' + h.log()[-3000:])
            self.assertIsNone(h.proc.poll(), 'dfewd exited')
            out = slurm('squeue', '-h', '--states=PENDING,CONFIGURING,RUNNING', '-o', '%i|%j')
            now = set()
            for line in out.split():
                sid, name = line.split('|')
                folder = os.path.join(h.dir, 'slurm', 'job-' + name.split('-', 2)[-1])
                if name.startswith('dfew-') and os.path.isdir(folder) and not os.path.exists(
                        os.path.join(folder, 'result')):
                    now.add(sid)
            seen |= now
            peak = max(peak, len(now))
            self.assertLessEqual(len(now), 2, 'more than max_jobs = 2 in flight: %s' % out)
            time.sleep(0.1)
        self.assertEqual(peak, 2)  # the cap was reached, not only kept
        self.assertEqual(len(seen), 5)  # each job its own Slurm job
        for j in jobs:
            self.assertEqual(h.scalar('SELECT attempts FROM jobs WHERE id = ?', j), 1)
            self.assertEqual(h.done_events(j), 1)
        self.assertEqual(h.stop(), 0)

    def test_sbatch_refusal_is_a_failed_attempt_with_slurms_message(self):
        # no storage check: its probe job would be refused as well
        h = self.home('partition = nosuch\ncheck_storage = no\n[queue]\nretry_base_seconds = 0.2\n')
        h.start()
        job = h.ctl_json('noop', '--max-attempts', '2')['first_id']
        h.wait_for(lambda: h.scalar('SELECT state FROM jobs WHERE id = ?', job) == 'dead', 60,
                   'job %d to end dead' % job)
        self.assertEqual(h.scalar('SELECT attempts FROM jobs WHERE id = ?', job), 2)
        self.assertEqual(h.done_events(job), 0)
        failed = [e['message'] for e in self.events(h, job) if e['from_state'] == 'leased']
        self.assertEqual(len(failed), 2, self.events(h, job))
        for m in failed:
            self.assertIn('sbatch refused the job', m)
            self.assertIn('Invalid partition name specified', m)  # Slurm's own words
        self.assertEqual(os.listdir(os.path.join(h.dir, 'slurm')), [])
        # dfewd goes on serving: a partition Slurm has, after a reload, and the next job runs
        self.assertIsNone(h.proc.poll())
        h.write_config(SLURM_CONF + 'partition = debug\n')
        h.proc.send_signal(signal.SIGHUP)
        h.wait_for(lambda: 'config reloaded' in h.log(), 30, 'the reload')
        nxt = h.ctl_json('noop')['first_id']
        h.ctl('wait', '--timeout', '60', nxt)
        self.assertEqual(h.scalar('SELECT state FROM jobs WHERE id = ?', nxt), 'done')
        self.assertEqual(h.stop(), 0)

    def test_storage_check_refuses_outputs_that_are_not_a_folder(self):
        h = self.home()
        outputs = os.path.join(h.dir, 'outputs')
        with open(outputs, 'w') as f:
            f.write('not a folder\n')
        h.start(wait_ready=False)
        rc = h.proc.wait(timeout=60 * SLOW)
        h.proc = None
        self.assertEqual(rc, 1)
        log = h.log()
        self.assertIn("not starting: the storage check: compute node %s cannot use dfewd's outputs folder %s "
                      "(Not a directory)" % (CLUSTER['node'], outputs), log)

    def test_status_shows_slurm_job_and_progress(self):
        h = self.home()
        h.start()
        st = h.daemon_status()
        self.assertEqual(st['executor'], 'slurm')
        job = h.ctl_json('noop', '--sleep-ms', '60000', '--progress', '5')['first_id']
        self.wait_running(h, job)
        # progress lines the worker wrote on the node reach the database
        h.wait_for(lambda: (h.scalar('SELECT progress FROM jobs WHERE id = ?', job) or 0) > 0, 30,
                   'progress of job %d' % job)
        slot = self.wait_running(h, job)
        text = h.ctl('status', '--once').stdout
        # the running job's line: its progress, and where it runs in Slurm
        self.assertRegex(text, r'\n  job %d +noop +[0-9.]+ s +\d+%% .*\(Slurm job %d RUNNING on %s\)' %
                         (job, slot['slurm_job'], re.escape(CLUSTER['node'])))
        h.ctl('cancel', job)  # not a minute's wait for it
        h.wait_for(lambda: self.slot_of(h, job) is None, 30, 'the slot to let go of the job')
        self.assertEqual(h.stop(), 0)


class SlurmTrainTest(SlurmBase):
    TRAIN = ['--backend', 'cpu', '--width', '0.125', '--epochs', '2', '--batch', '8', '--crop', '28', '--threads',
             '1', '--seed', '7', '--loss', 'ce', '--patience', '0']

    def test_folds_are_gpu_jobs_resuming_from_checkpoint(self):
        from test_train import VIDEOS, TrainTest
        paths = {name: video('mead_eamm/' + name) for name in VIDEOS}
        h = self.home('cpus = 1\n[prep]\nsize = 32\nframes = 8\nkeep_aligned = no\n[queue]\n'
                      'retry_base_seconds = 0.2\n', prep=True)
        TrainTest.t0 = time.time()  # prepare() times itself from there
        TrainTest.prepare(h, paths)  # 20 clips, prepared as Slurm jobs, labelled, 5 folds
        h.stop()
        run = h.ctl_json('train', '--split', 'mead5', *self.TRAIN)
        jobs = run['jobs']
        self.assertEqual(len(jobs), 5)
        con = h.db()
        with con:  # fold 1's first attempt waits in epoch 2
            con.execute("UPDATE jobs SET args = json_set(args, '$.stall_at', '2:1') WHERE id = ?", (jobs[0],))
        con.close()
        h.start()
        h.wait_for(lambda: os.path.exists(os.path.join(run['out_dir'], 'fold-1.stall')), 120 * SLOW,
                   'fold 1 to reach epoch 2')
        slot = self.wait_running(h, jobs[0])
        set_node('down', 'dfew-test')
        try:
            h.wait_for(lambda: slurm_state(slot['slurm_job'])[0] == 'NODE_FAIL', 30, 'Slurm to stop fold 1')
        finally:
            set_node('resume')
        h.ctl('wait', '--timeout', str(300 * SLOW), timeout=300 * SLOW + 60)
        log = h.log()
        sids = set()
        for j in jobs:
            self.assertEqual(h.scalar('SELECT state FROM jobs WHERE id = ?', j), 'done')
            self.assertEqual(h.done_events(j), 1)
            found = re.findall(r'job=%d train submitted as Slurm job (\d+)' % j, log)
            self.assertTrue(found, 'fold job %d never went to Slurm' % j)
            sids.update(found)
        self.assertGreaterEqual(len(sids), 6)  # five folds, fold 1 twice
        for sid in sids:  # each with a GPU of its own (Slurm keeps ended jobs for MinJobAge)
            self.assertIn('gres:gpu:1', slurm('scontrol', 'show', 'job', sid))
        folds = h.query('SELECT fold, job_id, epochs_done, resumed_from FROM run_folds WHERE run_id = ? ORDER BY fold',
                        run['run_id'])
        self.assertEqual([f['epochs_done'] for f in folds], [2] * 5)
        self.assertEqual(folds[0]['resumed_from'], 1)
        self.assertEqual(h.scalar('SELECT attempts FROM jobs WHERE id = ?', jobs[0]), 2)
        msg = [e['message'] for e in self.events(h, jobs[0]) if e['from_state'] == 'leased'][0]
        self.assertIn('NODE_FAIL', msg)
        self.assertEqual(h.stop(), 0)


if __name__ == '__main__':
    # the cluster stops however this process ends (a failure, a timeout's SIGTERM)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    why = cluster_start()
    if why:
        print('SKIP: %s' % why)
        sys.exit(77)
    try:
        main()
    finally:
        cluster_stop()
