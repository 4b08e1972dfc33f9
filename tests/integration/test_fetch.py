"""Integration: URLs submitted to a real dfewd are fetched with libcurl from a
local HTTP server started by the test (127.0.0.1): a full download that
becomes a probed movie, a download resumed with a Range request (If-Range
with the first response's ETag) after the connection was cut, a file that
changed on the server meanwhile (downloaded again from the start, never
spliced), a server without validators, downloads that die (the final reason,
nothing partial left), a 404, a file over the size limit, a redirect to file://
(refused), a host that does not resolve, a URL submitted twice, and a
fetch worker killed mid-download (retried and done, or dead: no partial file
left either way)."""
import hashlib
import http.server
import os
import signal
import threading
import time

from dfewtest import HomeTest, main, video


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, payload, other=b''):
        super().__init__(('127.0.0.1', 0), Handler)
        self.payload = payload
        self.other = other   # what a file that changes becomes
        self.requests = []   # (path, Range header)
        self.if_ranges = []  # (path, If-Range header)
        self.cut_once = set()
        self.lock = threading.Lock()

    def handle_error(self, request, client_address):
        pass  # the client hanging up on a cut response is part of the test

    def url(self, path):
        return 'http://127.0.0.1:%d%s' % (self.server_address[1], path)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, *args):
        pass

    def send_body(self, data, status=200, extra=(), etag='"v1"'):
        self.send_response(status)
        self.send_header('Content-Type', 'video/mp4')
        self.send_header('Content-Length', str(len(data)))
        self.send_header('Accept-Ranges', 'bytes')
        if etag:
            self.send_header('ETag', etag)
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        srv = self.server
        rng = self.headers.get('Range')
        if_range = self.headers.get('If-Range')
        with srv.lock:
            srv.requests.append((self.path, rng))
            srv.if_ranges.append((self.path, if_range))
        data = srv.payload
        start = int(rng[6:].split('-')[0]) if rng and rng.startswith('bytes=') else 0
        if self.path == '/missing.mp4':
            self.send_error(404, 'Not Found')
        elif self.path == '/huge.mp4':
            self.send_response(200)
            self.send_header('Content-Length', str(50 * 1024 * 1024))
            self.end_headers()
            self.wfile.write(b'\0' * 65536)
        elif self.path.startswith('/slow/'):
            self.send_response(200)
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            step = len(data) // 10 + 1
            for i in range(0, len(data), step):
                self.wfile.write(data[i:i + step])
                self.wfile.flush()
                time.sleep(0.3)
        elif self.path == '/to-file':
            self.send_response(302)
            self.send_header('Location', 'file:///etc/passwd')
            self.send_header('Content-Length', '0')
            self.end_headers()
        elif self.path == '/hop':
            self.send_response(301)
            self.send_header('Location', '/movie.mp4')
            self.send_header('Content-Length', '0')
            self.end_headers()
        elif self.path in ('/changed/movie.mp4', '/changed-ignores-if-range/movie.mp4', '/no-validator/movie.mp4'):
            # cut the first time; then the file on the server is another one
            first = self.path not in srv.cut_once
            srv.cut_once.add(self.path)
            etag = None if self.path.startswith('/no-validator') else '"v1"' if first else '"v2"'
            if first:
                self.send_response(200)
                self.send_header('Content-Length', str(len(data)))
                if etag:
                    self.send_header('ETag', etag)
                self.end_headers()
                self.wfile.write(data[:len(data) // 3])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if self.path.startswith('/changed/'):
                data = srv.other
            # as servers do: a Range alone is served from the file as it is now; with
            # If-Range only when the version matches (else the whole file, 200)
            if start and (self.path.startswith('/changed-ignores') or not if_range or if_range == etag):
                self.send_body(data[start:], 206, [('Content-Range', 'bytes %d-%d/%d' % (start, len(data) - 1,
                                                                                         len(data)))], etag=etag)
            else:
                self.send_body(data, etag=etag)
        elif self.path == '/always-cut/movie.mp4':
            self.send_response(200)
            self.send_header('Content-Length', str(len(data)))
            self.send_header('ETag', '"v1"')
            self.end_headers()
            self.wfile.write(data[start:start + 1000])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
        elif self.path == '/error500':
            self.send_error(500, 'Internal Server Error')
        elif self.path in ('/movie.mp4', '/cut/movie.mp4', '/cut-norange/movie.mp4'):
            start = 0
            if rng and rng.startswith('bytes='):
                start = int(rng[6:].split('-')[0])
            if self.path.startswith('/cut') and self.path not in srv.cut_once:
                srv.cut_once.add(self.path)
                # promise everything, send a third, hang up
                self.send_response(200)
                self.send_header('Content-Length', str(len(data)))
                self.send_header('ETag', '"v1"')
                self.end_headers()
                self.wfile.write(data[:len(data) // 3])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if start and self.path != '/cut-norange/movie.mp4':
                self.send_body(data[start:], 206,
                               [('Content-Range', 'bytes %d-%d/%d' % (start, len(data) - 1, len(data)))])
            else:
                self.send_body(data)
        else:
            self.send_error(404, 'Not Found')


class FetchTest(HomeTest):
    config = ('[queue]\nretry_base_seconds = 0.2\nretry_max_seconds = 0.5\n'
              '[fetch]\nmax_bytes = 4M\nconnect_timeout = 5s\ntimeout = 60s\n')

    def setUp(self):
        super().setUp()
        with open(video('single_face.mp4'), 'rb') as f:
            self.payload = f.read()
        with open(video('no_face.mp4'), 'rb') as f:
            self.other = f.read()
        self.server = Server(self.payload, self.other)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.home.start()

    def tearDown(self):
        self.server.shutdown()
        self.server.server_close()
        super().tearDown()

    def fetch(self, path, expect_ok=True):
        url = self.server.url(path) if path.startswith('/') else path
        out = self.home.ctl_json('submit', url)
        job = out['files'][0]['job_id']
        r = self.home.ctl('wait', '--timeout', '60', check=False)
        self.assertEqual(r.returncode, 0 if expect_ok else 1, r.stdout + r.stderr)
        return job, self.home.query('SELECT * FROM jobs WHERE id = ?', job)[0]

    def test_full_download_becomes_a_probed_movie(self):
        job, row = self.fetch('/hop')  # a redirect, then the file
        self.assertEqual(row['state'], 'done')
        movie = self.home.query('SELECT * FROM movies WHERE id = ?', row['movie_id'])[0]
        self.assertEqual(movie['sha256'], hashlib.sha256(self.payload).hexdigest())
        self.assertEqual(movie['source'], self.server.url('/hop'))
        self.assertTrue(movie['path'].startswith(os.path.join(self.home.dir, 'downloads')))
        with open(movie['path'], 'rb') as f:
            self.assertEqual(f.read(), self.payload)
        self.assertEqual((movie['width'], movie['frame_count']), (640, 72))
        # nothing partial left behind
        self.assertEqual([n for n in os.listdir(os.path.dirname(movie['path'])) if n.startswith('.')], [])
        # the same URL again: nothing new; the same bytes as a local file: known
        again = self.home.ctl_json('submit', self.server.url('/hop'))
        self.assertEqual((again['queued'], again['known']), (0, 1))
        local = self.home.ctl_json('submit', video('single_face.mp4'))
        self.assertEqual((local['queued'], local['known']), (0, 1))
        self.assertEqual(self.home.scalar('SELECT count(*) FROM movies'), 1)

    def test_cut_connection_resumes_with_range(self):
        job, row = self.fetch('/cut/movie.mp4')
        self.assertEqual(row['state'], 'done')
        ranges = [r for p, r in self.server.requests if p == '/cut/movie.mp4']
        self.assertEqual(ranges[0], None)
        self.assertEqual(ranges[-1], 'bytes=%d-' % (len(self.payload) // 3))
        self.assertEqual([r for p, r in self.server.if_ranges if p == '/cut/movie.mp4'], [None, '"v1"'])
        self.assertEqual(self.home.trail(job)[:4], ['queued', 'leased', 'failed', 'queued'])
        self.assertIn('will resume', self.home.scalar(
            "SELECT message FROM events WHERE job_id = ? AND to_state = 'failed'", job))
        import json
        result = json.loads(row['result'])
        self.assertEqual(result['resumed_from'], len(self.payload) // 3)
        self.assertEqual(result['sha256'], hashlib.sha256(self.payload).hexdigest())
        with open(result['path'], 'rb') as f:
            self.assertEqual(f.read(), self.payload)

    def test_changed_file_is_downloaded_again_not_spliced(self):
        import json
        for path in ('/changed/movie.mp4', '/changed-ignores-if-range/movie.mp4'):
            job, row = self.fetch(path)
            self.assertEqual(row['state'], 'done', path)
            want = self.other if path.startswith('/changed/') else self.payload
            result = json.loads(row['result'])
            self.assertEqual(result['sha256'], hashlib.sha256(want).hexdigest(), path)
            self.assertEqual(result['resumed_from'], 0, path)
            with open(result['path'], 'rb') as f:
                self.assertEqual(f.read(), want, path)
            # the resumed request named the first response's version
            self.assertIn((path, '"v1"'), self.server.if_ranges)
        self.assertEqual(self.home.scalar('SELECT count(*) FROM movies'), 2)

    def test_no_validator_no_resume(self):
        import json
        job, row = self.fetch('/no-validator/movie.mp4')
        self.assertEqual(row['state'], 'done')
        ranges = [r for p, r in self.server.requests if p == '/no-validator/movie.mp4']
        self.assertEqual(ranges, [None, None], 'nothing to check a resumed part against: from the start')
        self.assertEqual(json.loads(row['result'])['sha256'], hashlib.sha256(self.payload).hexdigest())

    def test_dead_download_says_why_and_leaves_nothing(self):
        _, row = self.fetch('/always-cut/movie.mp4', expect_ok=False)
        self.assertEqual((row['state'], row['attempts']), ('dead', 3))
        self.assertNotIn('will resume', row['error'])
        self.assertIn('gave up after 3 attempts', row['error'])
        self.assertIn("'dfewctl retry", row['error'])
        self.home.ctl('cancel', row['id'], check=False)
        _, row = self.fetch('/error500', expect_ok=False)
        self.assertEqual(row['state'], 'dead')
        self.assertIn('HTTP 500', row['error'])
        self.assertNotIn('retrying', row['error'])
        d = os.path.join(self.home.dir, 'downloads')
        self.assertEqual(os.listdir(d) if os.path.isdir(d) else [], [])

    def test_server_that_ignores_range_restarts_cleanly(self):
        job, row = self.fetch('/cut-norange/movie.mp4')
        self.assertEqual(row['state'], 'done')
        ranges = [r for p, r in self.server.requests if p == '/cut-norange/movie.mp4']
        # cut; asked to resume, the server sent it all again; then from the start
        self.assertEqual(ranges, [None, 'bytes=%d-' % (len(self.payload) // 3), None])
        self.assertEqual(self.home.trail(job).count('failed'), 1)
        import json
        result = json.loads(row['result'])
        self.assertEqual(result['resumed_from'], 0)
        self.assertEqual(result['sha256'], hashlib.sha256(self.payload).hexdigest())

    def test_progress_shows_in_status(self):
        job = self.home.ctl_json('submit', self.server.url('/slow/movie.mp4'))['files'][0]['job_id']
        seen = []

        def progress_shown():
            running = self.home.ctl_json('status')['running']
            seen.extend(r['progress_msg'] for r in running if r['id'] == job and r['progress_msg'])
            return any(m.startswith('downloaded ') and ' of 0.2 MiB' in m for m in seen)

        self.home.wait_for(progress_shown, 20, 'download progress in dfewctl status')
        self.home.ctl('wait', '--timeout', '60', job)
        self.assertEqual(self.home.scalar('SELECT state FROM jobs WHERE id = ?', job), 'done')

    def partials(self):
        d = os.path.join(self.home.dir, 'downloads')
        return sorted(n for n in os.listdir(d) if n.startswith('.partial')) if os.path.isdir(d) else []

    def kill_mid_download(self, job, attempt):
        """SIGKILLs the worker that runs attempt `attempt` of fetch job `job`
        once its partial file holds some bytes (attempt 1) or once it runs."""
        def busy():
            if self.home.scalar('SELECT attempts FROM jobs WHERE id = ?', job) != attempt:
                return None
            w = [w for w in self.home.daemon_status()['workers'] if w.get('job') == job]
            if not w or (attempt == 1 and not any(os.path.getsize(os.path.join(self.home.dir, 'downloads', n)) > 0
                                                  for n in self.partials() if not n.endswith('validator'))):
                return None
            return w[0]
        self.home.wait_for(lambda: busy() is not None, 20, 'attempt %d of job %d downloading' % (attempt, job))
        os.kill(busy()['pid'], signal.SIGKILL)

    def test_killed_download_leaves_no_partial(self):
        # killed once: the retry downloads it and the partial file is gone
        job = self.home.ctl_json('submit', self.server.url('/slow/once.mp4'))['files'][0]['job_id']
        self.kill_mid_download(job, 1)
        self.home.ctl('wait', '--timeout', '60', job)
        row = self.home.query('SELECT * FROM jobs WHERE id = ?', job)[0]
        self.assertEqual(row['state'], 'done')
        self.assertIn('killed by signal 9', self.home.scalar(
            "SELECT group_concat(message, ' | ') FROM events WHERE job_id = ?", job))
        import json
        with open(json.loads(row['result'])['path'], 'rb') as f:
            self.assertEqual(f.read(), self.payload)
        self.assertEqual(self.partials(), [])
        # killed on every attempt: dead, and dfewd removes what it left
        job = self.home.ctl_json('submit', self.server.url('/slow/always.mp4'))['files'][0]['job_id']
        attempts = self.home.scalar('SELECT max_attempts FROM jobs WHERE id = ?', job)
        for attempt in range(1, attempts + 1):
            self.kill_mid_download(job, attempt)
            if attempt == 1:
                self.assertNotEqual(self.partials(), [], 'a partial file while it downloads')
        r = self.home.ctl('wait', '--timeout', '60', job, check=False)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertEqual(self.home.scalar('SELECT state FROM jobs WHERE id = ?', job), 'dead')
        self.assertEqual(self.partials(), [])
        # retried by hand after that and done: still nothing partial
        self.home.ctl('retry', job)
        self.home.ctl('wait', '--timeout', '60', job)
        self.assertEqual(self.home.scalar('SELECT state FROM jobs WHERE id = ?', job), 'done')
        self.assertEqual(self.partials(), [])

    def test_failures_end_with_clear_reasons(self):
        _, row = self.fetch('/missing.mp4', expect_ok=False)
        self.assertEqual(row['state'], 'dead')
        self.assertIn('HTTP 404', row['error'])
        self.assertEqual(row['attempts'], 1)
        self.home.ctl('cancel', row['id'], check=False)
        _, row = self.fetch('/huge.mp4', expect_ok=False)
        self.assertIn('larger than the download limit', row['error'])
        self.assertIn('max_bytes', row['error'])
        _, row = self.fetch('/to-file', expect_ok=False)
        self.assertIn('refused a redirect', row['error'])
        self.assertIn('only http:// and https://', row['error'])
        _, row = self.fetch('http://no-such-host.invalid/movie.mp4', expect_ok=False)
        self.assertIn('no-such-host.invalid', row['error'])
        self.assertIn('check the URL', row['error'])
        self.assertEqual(self.home.scalar('SELECT count(*) FROM movies'), 0)
        # nothing half-downloaded is left under any name
        d = os.path.join(self.home.dir, 'downloads')
        self.assertEqual(os.listdir(d) if os.path.isdir(d) else [], [])
        r = self.home.ctl('submit', 'file:///etc/passwd', check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('only http:// and https://', r.stderr)
        self.assertTrue(self.home.ping())


if __name__ == '__main__':
    main()
