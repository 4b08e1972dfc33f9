"""Integration: dfew-web, the real server on a free 127.0.0.1 port, against a
real home (single_face.mp4 cut into three clips and prepped by a real dfewd),
driven by Debian's headless chromium through the DevTools protocol.

- the annotator flow end to end: a personal link from `dfewctl annotators
  add`, the clip's H.264 preview plays, a key press votes, the vote is in the
  votes table (source web), the next clip comes; clips are handed out fewest
  votes first; after 10 annotators (annotators_per_clip) an 11th vote is
  refused and not stored, as is a second vote by one annotator on one clip; a
  skipped clip is not shown to that annotator again; each preview holds
  exactly the clip's frames (clips.frames_total; also for a start 1e-6 s
  after a frame);
- a wrong or missing token is refused; an annotator's token opens no curator
  page; a POST without (or with a wrong) CSRF token, or from another origin,
  is refused; a path-traversal attempt is refused; oversized bodies too; a
  link revoked with `dfewctl annotators disable` gets 403;
- the curator's pages: queue (cancel and retry a job through the buttons),
  movies, one movie, clips with filters, one clip (its 16 frames load),
  dataset (Fleiss' kappa as computed here from the votes table), annotators,
  training runs; bad filters are refused; a dead job with its error and a
  retry button; label filters; folds of dfewctl's split (official, only one,
  or picked), named on the page;
- dfew-web's loopback default and its refusal of a web.token others can read.
Every page is screenshotted into the test artifacts (build/test-artifacts/web)
and checked to be non-blank."""
import http.client
import json
import os
import subprocess
import unittest
import urllib.parse

from dfewtest import SLOW, Home, _die_with_test, main, video
from webtest import WEB, Browser, WebServer, need_web

CLIPS = '0,0.8\n0.8,1.6\n1.6,2.4\n'
# Each annotator's vote per clip (by clip order): A mostly neutral, B mostly happy, C mostly disgust.
VOTES_A = [3, 3, 3, 3, 3, 3, 3, 3, 1, 1]
VOTES_B = [1, 1, 1, 1, 1, 1, 1, 2, 2, 2]
VOTES_C = [6, 6, 6, 6, 6, 6, 6, 5, 5, 4]


def fleiss(rows):
    """Fleiss' kappa of per-clip category counts (same raters per clip)."""
    n = len(rows)
    m = sum(rows[0])
    p = [sum(r[j] for r in rows) / (n * m) for j in range(7)]
    pbar = sum((sum(c * c for c in r) - m) / (m * (m - 1)) for r in rows) / n
    pe = sum(x * x for x in p)
    return (pbar - pe) / (1 - pe)


def preview_frames(path):
    """The video frames ffprobe decodes from a file."""
    out = subprocess.run(['ffprobe', '-v', 'error', '-count_frames', '-select_streams', 'v:0',
                          '-show_entries', 'stream=nb_read_frames', '-of', 'csv=p=0', path],
                         check=True, capture_output=True, text=True).stdout
    return int(out.strip())


class WebTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        need_web()
        movie = video('single_face.mp4')
        cls.home = Home(config='[prep]\nmin_face_ratio = 0\n', workers=2, prep=True)
        try:
            lst = os.path.join(cls.home.dir, 'clips.csv')
            with open(lst, 'w') as f:
                f.write(CLIPS)
            cls.home.ctl('submit', movie, '--clips', lst)
            cls.home.start()
            cls.home.ctl('wait', '--timeout', str(300 * SLOW), timeout=300 * SLOW + 60)
            cls.home.stop()
            cls.clips = [r['id'] for r in cls.home.query("SELECT id FROM clips WHERE state = 'usable' ORDER BY start_s")]
            assert len(cls.clips) == 3, cls.home.query('SELECT * FROM clip_status')
            cls.server = WebServer(cls.home)
            cls.browser = Browser()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        b, s = getattr(cls, 'browser', None), getattr(cls, 'server', None)
        try:
            if b:
                b.close()
        finally:
            cls.browser = None
            rc = s.stop() if s else 0
            cls.server = None
            cls.home.cleanup()
            assert rc == 0, 'dfew-web exited %s on SIGTERM' % rc

    # --- helpers ---
    def add_annotator(self, name):
        out = self.home.ctl_json('annotators', 'add', '--url', self.server.base, name)
        self.assertEqual(out['name'], name)
        self.assertRegex(out['link'], r'^http://127\.0\.0\.1:\d+/login\?token=[0-9a-f]{48}$')
        return out['link']

    def admin_token(self):
        return self.home.ctl('web', 'token').stdout.strip()

    def login_admin(self):
        self.assertEqual(self.browser.goto(self.server.base + '/login?token=' + self.admin_token()), 200)
        self.assertEqual(self.browser.eval('location.pathname'), '/')

    def shown_clip(self):
        return int(self.browser.eval("document.querySelector('input[name=clip]').value"))

    def votes(self, clip):
        return self.home.query('SELECT annotator, emotion, source FROM votes WHERE clip_id = ? ORDER BY annotator',
                               clip)

    def fetch_status(self, path, body):
        """A POST from the page's own JavaScript (same origin, cookie sent); the HTTP status."""
        return self.browser.eval("fetch(%s, {method: 'POST', headers: {'Content-Type': "
                                 "'application/x-www-form-urlencoded'}, body: %s, redirect: 'manual'})"
                                 ".then(r => r.type == 'opaqueredirect' ? 303 : r.status)" % (json.dumps(path), json.dumps(body)))

    # --- the annotator flow ---
    def test_1_annotator_flow(self):
        b = self.browser
        a, bclip, cclip = self.clips
        links = [self.add_annotator('ann%02d' % i) for i in range(11)]
        listing = self.home.ctl_json('annotators', 'list')
        self.assertEqual(sorted(r['name'] for r in listing), ['ann%02d' % i for i in range(11)])
        self.assertEqual({r['open_clips'] for r in listing}, {3})

        # ann00: the link signs in and drops the token from the address bar
        self.assertEqual(b.goto(links[0]), 200)
        self.assertEqual(b.eval('location.pathname + location.search'), '/annotate')
        first = self.shown_clip()
        self.assertIn(first, self.clips)
        # the clip's own footage plays: an H.264 MP4 of its frame range
        b.wait_js("(() => { const v = document.querySelector('video'); "
                  "return v && !v.error && v.readyState >= 2 && v.currentTime > 0 && v.videoWidth > 0; })()",
                  60, 'the preview video to play')
        self.assertEqual(b.eval("document.querySelector('video').videoHeight"), 360)
        duration = b.eval("document.querySelector('video').duration")
        self.assertAlmostEqual(duration, 0.8, delta=0.1)
        row = self.home.query('SELECT output_dir FROM clips WHERE id = ?', first)[0]
        preview = os.path.join(row['output_dir'], 'preview.mp4')
        self.assertTrue(os.path.getsize(preview) > 1000, 'preview cached next to the clip outputs')
        b.screenshot('annotate')

        # a vote with key 3: stored through the votes code, and the next clip comes
        self.assertEqual(b.key('3'), 200)
        self.assertEqual(self.votes(first), [{'annotator': 'ann00', 'emotion': 3, 'source': 'web'}])
        # a second vote by ann00 on that clip is refused and not stored
        csrf = b.eval("document.querySelector('meta[name=csrf]').content")
        self.assertEqual(self.fetch_status('/annotate/vote', 'csrf=%s&clip=%d&emotion=5' % (csrf, first)), 409)
        self.assertEqual(self.votes(first), [{'annotator': 'ann00', 'emotion': 3, 'source': 'web'}])
        second = self.shown_clip()
        self.assertEqual(b.key('1'), 200)
        third = self.shown_clip()
        self.assertEqual(b.key('6'), 200)
        self.assertTrue(b.eval("!!document.getElementById('done')"), 'no clip left for ann00')
        b.screenshot('annotate-done')
        # each clip's preview holds exactly the frames its prep job took (the same range rule)
        for clip in (first, second, third):
            row = self.home.query('SELECT output_dir, frames_total FROM clips WHERE id = ?', clip)[0]
            self.assertGreater(row['frames_total'], 0)
            self.assertEqual(preview_frames(os.path.join(row['output_dir'], 'preview.mp4')), row['frames_total'],
                             'clip %d: preview frames against the prep job\'s frames_total' % clip)
        # ann00 got the clips fewest votes first, ties by id: A (voted 3), B (1), C (6), as planned
        plan = {a: VOTES_A, bclip: VOTES_B, cclip: VOTES_C}
        self.assertEqual((first, second, third), (a, bclip, cclip))
        # fairness: ann01 votes one clip (A: all had one vote) and is shown B next (held for ann01);
        # ann02 then gets C: A has more votes, and B counts ann01's coming vote
        self.assertEqual(b.goto(links[1]), 200)
        self.assertEqual(self.shown_clip(), a)
        b.key(str(VOTES_A[1]))
        self.assertEqual(self.shown_clip(), bclip)
        self.assertEqual(b.goto(links[2]), 200)
        self.assertEqual(self.shown_clip(), cclip, 'the clip with the fewest votes and holds comes first')

        # ann01..ann09 vote on what is left for them with their keys
        for i in range(1, 10):
            self.assertEqual(b.goto(links[i]), 200)
            for _ in range(4):
                if b.eval("!!document.getElementById('done')"):
                    break
                clip = self.shown_clip()
                self.assertEqual(b.key(str(plan[clip][i])), 200)
            self.assertTrue(b.eval("!!document.getElementById('done')"), 'ann%02d done' % i)
        for clip in self.clips:
            got = sorted(r['emotion'] for r in self.votes(clip))
            self.assertEqual(got, sorted(plan[clip]))

        # the 11th annotator: nothing to do, and a vote sent anyway is refused and not stored
        self.assertEqual(b.goto(links[10]), 200)
        self.assertTrue(b.eval("!!document.getElementById('done')"))
        csrf = b.eval("document.querySelector('meta[name=csrf]').content")
        status = self.fetch_status('/annotate/vote', 'csrf=%s&clip=%d&emotion=4' % (csrf, a))
        self.assertEqual(status, 409)
        self.assertEqual(len(self.votes(a)), 10)
        self.assertNotIn('ann10', [r['annotator'] for r in self.votes(a)])
        listing = {r['name']: r for r in self.home.ctl_json('annotators', 'list')}
        self.assertEqual(listing['ann05']['votes'], 3)
        self.assertEqual(listing['ann10']['votes'], 0)

        # the hand-out's vote counts (kept by triggers) agree with the votes table
        drift = "SELECT count(*) FROM clips c LEFT JOIN clip_vote_counts k ON k.clip_id = c.id " \
                "WHERE k.votes IS NOT (SELECT count(*) FROM votes v WHERE v.clip_id = c.id)"
        self.assertEqual(self.home.scalar(drift), 0)
        self.assertEqual(self.home.scalar('SELECT votes FROM clip_vote_counts WHERE clip_id = ?', a), 10)

        # the curator sees the votes, single labels and live kappa
        self.login_admin()
        self.assertEqual(b.goto(self.server.base + '/dataset'), 200)
        kappa = float(b.eval("document.querySelector('#kappa td.kappa').textContent"))
        rows = [[sum(1 for v in plan[c] if v == e) for e in range(1, 8)] for c in self.clips]
        self.assertAlmostEqual(kappa, fleiss(rows), places=3)
        b.screenshot('dataset')
        # each clip's vote counts (happy..fear), total and single label, as planned
        expect = {a: ['2', '0', '8', '0', '0', '0', '0', '10', 'neutral'],
                  bclip: ['7', '3', '0', '0', '0', '0', '0', '10', 'happy'],
                  cclip: ['0', '0', '0', '1', '2', '7', '0', '10', 'disgust']}
        for clip in self.clips:
            self.assertEqual(b.goto(self.server.base + '/clip/%d' % clip), 200)
            self.assertEqual(b.eval("[...document.querySelectorAll('#votes tbody td')].map(t => t.textContent)"),
                             expect[clip], 'clip %d' % clip)
            self.assertEqual(b.eval("document.querySelector('#votes td.label').textContent"), expect[clip][-1])
        b.screenshot('clip-voted')

    # --- refusals ---
    def test_2_tokens(self):
        b, s = self.browser, self.server
        link = self.add_annotator('tok')
        b.clear_cookies()
        self.assertEqual(b.goto(s.base + '/annotate'), 401)
        b.screenshot('no-token')
        self.assertEqual(b.goto(s.base + '/login?token=' + '0' * 48), 403)
        self.assertEqual(b.goto(s.base + '/login?token=../../etc/passwd'), 403)
        self.assertEqual(b.goto(s.base + '/'), 401)
        # an annotator's token opens the annotation pages only
        self.assertEqual(b.goto(link), 200)
        for page in ('/', '/clips', '/dataset', '/movie/1', '/media/clip/%d/sheet.png' % self.clips[0]):
            self.assertEqual(b.goto(s.base + page), 403 if not page.startswith('/media') else 404, page)
        # the curator revokes the link (dfewctl annotators disable): the signed-in browser and the link get 403
        # with what happened; votes stay; enable lets the same link in again
        self.assertEqual(self.home.ctl_json('annotators', 'disable', 'tok'), {'name': 'tok', 'disabled': True})
        self.assertEqual(b.goto(s.base + '/annotate'), 403)
        self.assertIn('switched this link off (dfewctl annotators disable)', b.eval('document.body.textContent'))
        b.screenshot('annotate-revoked')
        self.assertEqual(b.goto(link), 403)
        tok = urllib.parse.urlparse(link).query.split('=')[1]
        st, _, _ = s.request('GET', '/media/clip/%d/frame/1' % self.clips[0], headers={'Cookie': 'dfew_session=' + tok})
        self.assertEqual(st, 403)
        listing = {r['name']: r for r in self.home.ctl_json('annotators', 'list')}
        self.assertEqual((listing['tok']['disabled'], listing['ann00']['disabled']), (1, 0))
        before = self.home.scalar("SELECT count(*) FROM votes WHERE annotator = 'ann05'")
        self.home.ctl('annotators', 'disable', 'ann05')
        self.assertEqual(self.home.scalar("SELECT count(*) FROM votes WHERE annotator = 'ann05'"), before)
        self.home.ctl('annotators', 'enable', 'ann05')
        self.assertEqual(self.home.ctl_json('annotators', 'enable', 'tok'), {'name': 'tok', 'disabled': False})
        self.assertEqual(b.goto(link), 200)
        self.assertEqual(b.eval('location.pathname'), '/annotate')
        r = self.home.ctl('annotators', 'disable', 'nobody', check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("there is no annotator 'nobody'", r.stderr)
        self.assertIn('Revokes NAME', self.home.ctl('annotators', 'disable', '--help').stdout)
        # the admin token as a Bearer header works for scripts; a wrong one does not
        st, _, _ = s.request('GET', '/clips', headers={'Authorization': 'Bearer ' + self.admin_token()})
        self.assertEqual(st, 200)
        st, _, _ = s.request('GET', '/clips', headers={'Authorization': 'Bearer ' + 'f' * 48})
        self.assertEqual(st, 401)
        # the token file is the owner's only
        self.assertEqual(os.stat(os.path.join(self.home.dir, 'web.token')).st_mode & 0o777, 0o600)

    def test_3_csrf(self):
        b, s = self.browser, self.server
        link = self.add_annotator('csrf')
        self.assertEqual(b.goto(link), 200)
        clip = self.shown_clip() if b.eval("!!document.querySelector('input[name=clip]')") else self.clips[0]
        before = self.home.scalar('SELECT count(*) FROM votes')
        self.assertEqual(self.fetch_status('/annotate/vote', 'clip=%d&emotion=2' % clip), 403)
        self.assertEqual(self.fetch_status('/annotate/vote', 'csrf=%s&clip=%d&emotion=2' % ('a' * 32, clip)), 403)
        # a form posted from another site: the browser sends the cookie, not our token
        token = urllib.parse.urlparse(link).query.split('=')[1]
        csrf = b.eval("document.querySelector('meta[name=csrf]').content")
        body = ('csrf=%s&clip=%d&emotion=2' % (csrf, clip)).encode()
        st, _, _ = s.request('POST', '/annotate/vote', body, {
            'Cookie': 'dfew_session=' + token, 'Origin': 'http://evil.example',
            'Content-Type': 'application/x-www-form-urlencoded'})
        self.assertEqual(st, 403)
        # an oversized body is refused before it is read
        st, _, _ = s.request('POST', '/annotate/vote', b'x=' + b'a' * 10000, {
            'Cookie': 'dfew_session=' + token, 'Content-Type': 'application/x-www-form-urlencoded'})
        self.assertEqual(st, 413)
        # a job retry forged without the token
        st, _, _ = s.request('POST', '/job/1/retry', b'', {
            'Authorization': 'Bearer ' + self.admin_token(), 'Content-Type': 'application/x-www-form-urlencoded'})
        self.assertEqual(st, 403)
        self.assertEqual(self.home.scalar('SELECT count(*) FROM votes'), before)

    def test_4_path_traversal(self):
        s = self.server
        auth = {'Authorization': 'Bearer ' + self.admin_token()}
        for path in ('/media/clip/%d/frame/../../../../../../etc/passwd' % self.clips[0],
                     '/media/clip/%d/%%2e%%2e/%%2e%%2e/%%2e%%2e/etc/passwd' % self.clips[0],
                     '/static/../../../../etc/passwd', '/media/clip/1/../../dfew.db',
                     '/media/clip/%2F..%2F..%2Fetc%2Fpasswd/frame/1', '/clip/1%00', '/media/clip/0/frame/1',
                     '/media/clip/99999999999999999999/frame/1', '/media/clip/%d/frame/17' % self.clips[0],
                     '/media/clip/%d/frame/0' % self.clips[0]):
            st, _, body = s.request('GET', path, headers=auth)
            self.assertIn(st, (400, 404), path)
            self.assertNotIn(b'root:', body)
            self.assertNotIn(b'SQLite format', body)
        # the real frame by record id works
        st, h, body = s.request('GET', '/media/clip/%d/frame/16' % self.clips[0], headers=auth)
        self.assertEqual(st, 200)
        self.assertEqual(body[:8], b'\x89PNG\r\n\x1a\n')
        # a huge header block is refused by the HTTP library's limits (an error status, or the connection closed)
        try:
            st, _, _ = s.request('GET', '/clips', headers=dict(auth, **{'X-Big': 'b' * 40000}))
        except ConnectionError:
            st = 'closed'
        self.assertTrue(st == 'closed' or st >= 400, st)

    # --- the curator's pages ---
    def test_5_curator_pages(self):
        b, s = self.browser, self.server
        self.login_admin()
        a = self.clips[0]
        movie = self.home.scalar('SELECT movie_id FROM clips WHERE id = ?', a)
        # a job that failed for good: on the queue page with its error and a retry button, no cancel
        dead = self.home.ctl_json('noop', '--count', '1', '--fail', 'permanent')['first_id']
        self.home.start()
        try:
            w = self.home.ctl('wait', '--timeout', str(60 * SLOW), check=False, timeout=60 * SLOW + 30)
        finally:
            self.home.stop()
        self.assertEqual(w.returncode, 1, 'dfewctl wait: 1 when some job is dead\n' + w.stdout + w.stderr)
        self.assertEqual(self.home.scalar('SELECT state FROM jobs WHERE id = ?', dead), 'dead')
        self.assertEqual(b.goto(s.base + '/'), 200)
        row = '#job-%d' % dead
        cells = b.eval("[...document.querySelector('%s').cells].map(c => c.textContent.trim())" % row)
        self.assertEqual(cells[1:3], ['noop', 'dead'])
        self.assertEqual(cells[7], 'noop asked to fail (permanent) on attempt 1')
        self.assertEqual(b.eval("[...document.querySelectorAll('%s form')].map(f => f.getAttribute('action'))" % row),
                         ['/job/%d/retry' % dead])
        b.screenshot('queue-dead')
        self.assertEqual(b.click(row + ' form[action$=retry] button'), 200)
        self.assertEqual(b.eval("document.getElementById('msg').textContent"), 'job retried')
        self.assertEqual(self.home.scalar('SELECT state FROM jobs WHERE id = ?', dead), 'queued')
        self.assertFalse(b.eval("!!document.querySelector('#job-%d form[action$=retry]')" % dead))
        # a job to cancel and retry from the queue page
        job_id = self.home.ctl_json('noop', '--count', '1')['first_id']
        self.assertEqual(b.goto(s.base + '/'), 200)
        b.screenshot('queue')
        b.eval('window.confirm = () => true')
        self.assertEqual(b.click('#job-%d form[action$=cancel] button' % job_id), 200)
        self.assertEqual(self.home.scalar('SELECT state FROM jobs WHERE id = ?', job_id), 'cancelled')
        self.assertEqual(b.eval("document.getElementById('msg').textContent"), 'job cancelled')
        # the cancelled job is listed nowhere on the queue page but its retry works by POST from the page
        csrf = b.eval("document.querySelector('meta[name=csrf]').content")
        self.assertEqual(self.fetch_status('/job/%d/retry' % job_id, 'csrf=' + csrf), 303)
        self.assertEqual(self.home.scalar('SELECT state FROM jobs WHERE id = ?', job_id), 'queued')
        self.assertEqual(self.fetch_status('/job/%d/retry' % job_id, 'csrf=' + csrf), 409)
        trail = self.home.trail(job_id)
        self.assertEqual(trail[-2:], ['cancelled', 'queued'])

        pages = [('movies', '/movies'), ('movie', '/movie/%d' % movie), ('clips', '/clips'),
                 ('clips-filtered', '/clips?state=usable&bucket=0-2s&sort=duration&dir=desc'),
                 ('clip', '/clip/%d' % a), ('annotators', '/annotators'), ('runs', '/runs')]
        for name, path in pages:
            self.assertEqual(b.goto(s.base + path), 200, path)
            b.screenshot('page-' + name)
        # the clip page: its 16 aligned frames load and play as an animation; the contact sheet loads
        self.assertEqual(b.goto(s.base + '/clip/%d' % a), 200)
        b.wait_js("[...document.querySelectorAll('#anim img')].filter(i => i.complete && i.naturalWidth > 0)"
                  ".length == 16", 60, 'the 16 frames')
        b.wait_js("(() => { const i = document.querySelector('img.sheet'); "
                  "return i && i.complete && i.naturalWidth > 100; })()", 120, 'the contact sheet')
        on = b.eval("[...document.querySelectorAll('#anim img')].findIndex(i => i.classList.contains('on'))")
        b.wait_js("[...document.querySelectorAll('#anim img')].findIndex(i => i.classList.contains('on')) != %d"
                  % on, 10, 'the animation to move on')
        b.screenshot('page-clip-loaded')
        # clip list filters: usable clips, both listed; a label filter; bad values refused
        self.assertEqual(b.goto(s.base + '/clips?state=usable'), 200)
        ids = b.eval("[...document.querySelectorAll('tbody tr td:first-child')].map(t => +t.textContent)")
        self.assertEqual(sorted(ids), sorted(self.clips))
        # label filters: after test_1 every clip is single-labelled as planned
        a, bclip, cclip = self.clips
        if self.home.scalar('SELECT count(*) FROM clip_labels WHERE label IS NOT NULL') != 3:
            self.fail('test_1 did not leave three single-labelled clips')
        for label, want in (('neutral', [a]), ('happy', [bclip]), ('disgust', [cclip]), ('sad', []),
                            ('ambiguous', []), ('unlabelled', [])):
            self.assertEqual(self.label_filter(label), want, label)
        self.assertEqual(b.goto(s.base + '/clips?state=unusable'), 200)
        self.assertEqual(b.eval("document.querySelectorAll('tbody tr').length"), 0)
        for bad in ('state=dead%27--', 'sort=id;drop', 'page=0', 'fold=x', 'label=joy', 'dir=up'):
            self.assertEqual(b.goto(s.base + '/clips?' + bad), 400, bad)
        self.assertEqual(b.goto(s.base + '/clip/999999'), 404)
        self.assertEqual(b.goto(s.base + '/nope'), 404)

    def clip_folds(self, query=''):
        """The clip list's fold column: {clip id: fold text}."""
        self.assertEqual(self.browser.goto(self.server.base + '/clips' + query), 200, query)
        rows = self.browser.eval("[...document.querySelectorAll('#clips tbody tr')]"
                                 ".map(r => [+r.cells[0].textContent, r.cells[r.cells.length - 1].textContent])")
        return {c: f for c, f in rows}

    def split_folds(self, name):
        return {r['clip_id']: str(r['fold']) for r in
                self.home.query('SELECT clip_id, fold FROM fold_clips WHERE split = ?', name)}

    def split_note(self):
        return self.browser.eval("document.getElementById('split').textContent")

    def check_split_choice(self):
        """The clip list's folds come from dfewctl's split: the official 'dfew' one, else the only one;
        with several and none official, the one picked (split=NAME), and the page says which."""
        b = self.browser
        self.assertEqual(self.clip_folds(), self.split_folds('web2'))
        self.assertEqual(b.eval("document.querySelector('#split b.split').textContent"), 'web2')
        self.assertIn('the only one', self.split_note())
        self.home.ctl('folds', 'make', '--k', '3', '--seed', '5', '--name', 'web3')
        self.assertNotEqual(self.split_folds('web3'), self.split_folds('web2'), 'two splits that differ')
        # two splits, none official: no fold shown, the page says to pick one; a fold filter needs one
        self.assertEqual(self.clip_folds(), {c: '' for c in self.clips})
        self.assertIn("several splits ('web2', 'web3') and none is the official 'dfew' one", self.split_note())
        b.screenshot('page-clips-pick-split')
        self.assertEqual(b.goto(self.server.base + '/clips?fold=1'), 400)
        self.assertIn('pick one with split=NAME', b.eval("document.body.textContent"))
        # picked
        self.assertEqual(self.clip_folds('?split=web3'), self.split_folds('web3'))
        self.assertEqual(b.eval("document.querySelector('#split b.split').textContent"), 'web3')
        self.assertEqual(b.eval("document.querySelector('select[name=split]').value"), 'web3')
        web3_fold1 = [c for c, f in self.split_folds('web3').items() if f == '1']
        self.assertEqual(sorted(self.clip_folds('?split=web3&fold=1')), web3_fold1)
        self.assertEqual(b.goto(self.server.base + '/clips?split=nope'), 400)
        # the official split (the older one, renamed with sqlite3) is the default, not the newest
        con = self.home.db()
        with con:
            con.execute("UPDATE splits SET name = 'dfew' WHERE name = 'web2'")
        con.close()
        self.assertEqual(self.clip_folds(), self.split_folds('dfew'))
        self.assertEqual(b.eval("document.querySelector('#split b.split').textContent"), 'dfew')
        self.assertIn('the official one', self.split_note())
        self.assertEqual(self.clip_folds('?split=web3'), self.split_folds('web3'))

    def test_6_folds_and_runs(self):
        """Needs test_1's votes (all clips single-labelled): 3 folds, a run whose
        fold jobs are queued (dfewd is not running), and the predictions a
        train job would store; the fold filter and the run's pages."""
        b, s = self.browser, self.server
        if self.home.scalar('SELECT count(*) FROM clip_labels WHERE label IS NOT NULL') != 3:
            self.fail('test_1 did not leave three single-labelled clips')
        self.home.ctl('folds', 'make', '--k', '3', '--name', 'web2')
        run = self.home.ctl_json('train', '--split', 'web2', '--epochs', '1')
        run_id = run['run_id']
        con = self.home.db()
        with con:
            for f in con.execute("SELECT fold, clip_id, label FROM fold_clips WHERE split = 'web2'").fetchall():
                pred = f['label'] if f['fold'] == 1 else 7  # fold 1 right, the others wrong (fear)
                con.execute('INSERT INTO predictions VALUES (?, ?, ?, ?, ?, 0, 0, 0, 0, 0, 0, 1)',
                            (run_id, f['fold'], f['clip_id'], f['label'], pred))
        con.close()
        self.login_admin()
        fold1 = self.home.scalar("SELECT clip_id FROM fold_clips WHERE split = 'web2' AND fold = 1")
        self.assertEqual(b.goto(s.base + '/clips?fold=1'), 200)
        self.assertEqual(b.eval("[...document.querySelectorAll('tbody tr td:first-child')].map(t => +t.textContent)"),
                         [fold1])
        self.assertEqual(b.goto(s.base + '/dataset'), 200)
        self.assertIn('web2', b.eval("document.body.textContent"))
        self.assertEqual(b.goto(s.base + '/runs'), 200)
        b.screenshot('page-runs-one')
        self.assertEqual(b.goto(s.base + '/run/%d' % run_id), 200)
        text = b.eval("document.body.textContent")
        self.assertIn('fear', text)
        # the pooled confusion matrix: one clip right, one predicted fear
        rows = b.eval("[...document.querySelectorAll('table')].pop().querySelectorAll('tbody tr').length")
        self.assertEqual(rows, 7)
        b.screenshot('page-run')
        self.check_split_choice()
        # a vote deleted with sqlite3 (the last test: it changes the labels): the counts follow
        con = self.home.db()
        with con:
            con.execute("DELETE FROM votes WHERE annotator = 'ann00'")
        con.close()
        self.assertEqual(self.home.scalar("SELECT count(*) FROM clips c JOIN clip_vote_counts k ON k.clip_id = c.id "
                                          "WHERE k.votes <> (SELECT count(*) FROM votes v WHERE v.clip_id = c.id)"), 0)
        self.assertEqual(self.home.scalar('SELECT sum(votes) FROM clip_vote_counts'), 27)
        # each clip has room for one vote again: the 11th annotator gets them and skips each with s
        link = self.home.ctl_json('annotators', 'add', '--url', s.base, 'skipper')['link']
        self.assertEqual(b.goto(link), 200)
        seen = []
        for _ in range(3):
            seen.append(self.shown_clip())
            self.assertEqual(b.key('s'), 200)
        self.assertEqual(sorted(seen), sorted(self.clips), 'each clip once, none twice')
        self.assertTrue(b.eval("!!document.getElementById('done')"), 'skipped clips do not come back')
        self.assertEqual(self.home.scalar("SELECT skipped FROM annotator_progress WHERE name = 'skipper'"), 3)
        self.assertEqual(self.home.scalar("SELECT count(*) FROM votes WHERE annotator = 'skipper'"), 0)
        # the label filters: after ann00's votes went, A keeps 7 neutral votes of 9, B (6 happy) and C
        # (6 disgust) are no longer single-labelled (r = 6); then C loses all its votes
        a, bclip, cclip = self.clips
        self.login_admin()
        self.assertEqual(self.label_filter('neutral'), [a])
        self.assertEqual(self.label_filter('happy'), [])
        self.assertEqual(self.label_filter('ambiguous'), [bclip, cclip])
        self.assertEqual(self.label_filter('unlabelled'), [])
        con = self.home.db()
        with con:
            con.execute('DELETE FROM votes WHERE clip_id = ?', (cclip,))
        con.close()
        self.assertEqual(self.label_filter('ambiguous'), [bclip])
        self.assertEqual(self.label_filter('unlabelled'), [cclip])
        self.assertEqual(self.label_filter('disgust'), [])
        b.screenshot('page-clips-unlabelled')

    def label_filter(self, label):
        """The clips /clips?label=LABEL lists, by id."""
        self.assertEqual(self.browser.goto(self.server.base + '/clips?label=' + label), 200)
        return sorted(self.browser.eval("[...document.querySelectorAll('#clips tbody tr')]"
                                        ".map(r => +r.cells[0].textContent)"))

    # --- starting dfew-web ---
    def test_7_defaults_and_token_file(self):
        # --help names the default address: loopback only
        h = subprocess.run([WEB, '--help'], capture_output=True, text=True, timeout=30)
        self.assertEqual(h.returncode, 0)
        self.assertIn('default 127.0.0.1:8080', h.stdout)
        # without --listen it takes 127.0.0.1:8080: it listens there, or (the port taken by another
        # program on this machine) says that it could not listen there
        p = subprocess.Popen([WEB, '--home', self.home.dir], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, preexec_fn=_die_with_test)
        try:
            line = p.stdout.readline()
            if line:
                self.assertRegex(line, r'^dfew-web: listening on http://127\.0\.0\.1:8080/ ')
                # it answers there (a page that needs a sign-in)
                c = http.client.HTTPConnection('127.0.0.1', 8080, timeout=30 * SLOW)
                try:
                    c.request('GET', '/')
                    self.assertEqual(c.getresponse().status, 401)
                finally:
                    c.close()
                p.terminate()
                self.assertEqual(p.wait(timeout=20 * SLOW), 0)
            else:
                self.assertEqual(p.wait(timeout=20 * SLOW), 1)
                err = p.stderr.read()
                self.assertIn('cannot listen on 127.0.0.1:8080: Address already in use', err)
                print('\n  (port 8080 is taken here: checked the address dfew-web tried instead)')
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
            p.stderr.close()
        # a web.token that others can read is refused, with what to do
        token = os.path.join(self.home.dir, 'web.token')
        os.chmod(token, 0o644)
        try:
            r = subprocess.run([WEB, '--home', self.home.dir, '--listen', '127.0.0.1:0'], capture_output=True,
                               text=True, timeout=30 * SLOW)
        finally:
            os.chmod(token, 0o600)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertEqual(r.stdout, '')
        self.assertIn('%s must be a file of this user that only it can read and write (mode 0600, it is 0644): '
                      'chmod 600 %s' % (token, token), r.stderr)

    def test_8_preview_frame_range(self):
        """A clip whose start lies within 1e-6 s after a frame (0.0333333 s, frame 1 of the 30 fps movie):
        the prep job takes that frame (its range rule has 1e-6 s of slack at both ends), and so must the
        preview; a preview that compared times without the slack would hold one frame less."""
        movie = video('single_face.mp4')
        home = Home(config='[prep]\nmin_face_ratio = 0\n', workers=1, prep=True)
        server = None
        try:
            lst = os.path.join(home.dir, 'clips.csv')
            with open(lst, 'w') as f:
                f.write('0.0333343,0.8\n')
            home.ctl('submit', movie, '--clips', lst)
            home.start()
            home.ctl('wait', '--timeout', str(300 * SLOW), timeout=300 * SLOW + 60)
            home.stop()
            row = home.query('SELECT id, output_dir, frames_total FROM clips')[0]
            self.assertEqual(row['frames_total'], 23, 'frames 1..23 (t = 1/30 .. 23/30 s)')
            server = WebServer(home)
            token = home.ctl('web', 'token').stdout.strip()
            st, h, body = server.request('GET', '/media/clip/%d/preview.mp4' % row['id'],
                                         headers={'Authorization': 'Bearer ' + token})
            self.assertEqual(st, 200)
            path = os.path.join(row['output_dir'], 'preview.mp4')
            with open(path, 'rb') as f:
                self.assertEqual(f.read(), body)
            self.assertEqual(preview_frames(path), 23)
        finally:
            rc = server.stop() if server else 0
            home.cleanup()
        self.assertEqual(rc, 0)


if __name__ == '__main__':
    main()
