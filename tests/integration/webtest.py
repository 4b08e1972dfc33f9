"""Harness for dfew-web's integration tests: the real dfew-web on a free
127.0.0.1 port, Debian's headless chromium driven through the DevTools
protocol (python3-websocket), plain HTTP requests for what a browser will
not send, and screenshots saved as test artifacts (checked to be non-blank
with the ffmpeg command line and numpy). No mocks."""
import base64
import http.client
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest
import urllib.request

from dfewtest import BUILD, SLOW, Home, _die_with_test

WEB = os.path.join(BUILD, 'web', 'dfew-web')
CHROMIUM = shutil.which('chromium')
ARTIFACTS = os.environ.get('DFEW_TEST_ARTIFACTS', os.path.join(BUILD, 'test-artifacts', 'web'))


def need_web():
    """Skips (visibly) when dfew-web, chromium or python3-websocket is missing."""
    if not os.path.exists(WEB):
        raise unittest.SkipTest('dfew-web not built (libmicrohttpd-dev missing: scripts/setup-deps.sh installs it)')
    if not CHROMIUM:
        raise unittest.SkipTest('Debian chromium missing (scripts/setup-deps.sh installs it)')
    try:
        import websocket  # noqa: F401
    except ImportError:
        raise unittest.SkipTest('python3-websocket missing (scripts/setup-deps.sh installs it)')


class WebServer:
    """dfew-web on a port the kernel chose, its output captured."""

    def __init__(self, home, *extra):
        self.home = home
        self.log_path = os.path.join(home.dir, 'dfew-web.test.log')
        self.log = open(self.log_path, 'ab')
        self.proc = subprocess.Popen([WEB, '--home', home.dir, '--listen', '127.0.0.1:0'] + list(extra),
                                     stdout=subprocess.PIPE, stderr=self.log, preexec_fn=_die_with_test)
        line = self.proc.stdout.readline().decode()
        m = re.search(r'listening on http://127\.0\.0\.1:(\d+)/', line)
        if not m:
            self.proc.kill()
            raise AssertionError('dfew-web did not start: %r\n%s' % (line, self.output()))
        self.port = int(m.group(1))
        self.base = 'http://127.0.0.1:%d' % self.port

    def output(self):
        with open(self.log_path, errors='replace') as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                rc = self.proc.wait(timeout=20 * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError('dfew-web did not stop on SIGTERM')
        else:
            rc = self.proc.returncode
        self.proc.stdout.close()
        self.log.close()
        Home.check_sanitizer(self.output(), 'dfew-web')
        return rc

    def request(self, method, path, body=None, headers=None):
        """One raw HTTP request (the path is sent exactly as given); (status, headers, body bytes)."""
        c = http.client.HTTPConnection('127.0.0.1', self.port, timeout=30 * SLOW)
        try:
            c.putrequest(method, path, skip_accept_encoding=True)
            for k, v in (headers or {}).items():
                c.putheader(k, v)
            if body is not None:
                c.putheader('Content-Length', str(len(body)))
            c.endheaders(body)
            r = c.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            c.close()


class Browser:
    """Headless chromium and one page, over the DevTools protocol."""

    def __init__(self):
        import websocket
        self.profile = tempfile.mkdtemp(prefix='dfew-chromium-')
        self.proc = subprocess.Popen([CHROMIUM, '--headless=new', '--no-sandbox', '--disable-gpu',
                                      '--no-first-run', '--no-default-browser-check', '--mute-audio',
                                      '--autoplay-policy=no-user-gesture-required', '--window-size=1280,900',
                                      '--remote-debugging-port=0', '--user-data-dir=' + self.profile,
                                      'about:blank'],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=_die_with_test)
        port = None
        end = time.time() + 60
        while time.time() < end and port is None:
            line = self.proc.stderr.readline().decode(errors='replace')
            if not line and self.proc.poll() is not None:
                break
            m = re.search(r'DevTools listening on ws://127\.0\.0\.1:(\d+)/', line)
            if m:
                port = int(m.group(1))
        if port is None:
            self.close()
            raise AssertionError('chromium did not start its DevTools endpoint')
        # keep reading chromium's stderr so that it never blocks on a full pipe
        import threading
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()
        pages = json.load(urllib.request.urlopen('http://127.0.0.1:%d/json/list' % port, timeout=30))
        page = [p for p in pages if p['type'] == 'page'][0]
        self.ws = websocket.create_connection(page['webSocketDebuggerUrl'], timeout=60 * SLOW,
                                              suppress_origin=True)
        self.next_id = 0
        self.events = []
        self.call('Page.enable')
        self.call('Runtime.enable')
        self.call('Network.enable')

    def call(self, method, **params):
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({'id': mid, 'method': method, 'params': params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get('id') == mid:
                if 'error' in msg:
                    raise AssertionError('%s: %s' % (method, msg['error']))
                return msg.get('result', {})
            if 'method' in msg:
                self.events.append(msg)

    def next_event(self):
        """The oldest event not looked at yet (buffered while waiting for a reply, else from the socket)."""
        if self.events:
            return self.events.pop(0)
        while True:
            msg = json.loads(self.ws.recv())
            if 'method' in msg:
                return msg

    def goto(self, url):
        """Navigates and waits for the load event; the main document's HTTP status."""
        self.events.clear()
        self.call('Page.navigate', url=url)
        return self._loaded()

    def _loaded(self):
        status = None
        end = time.time() + 60 * SLOW
        while time.time() < end:
            msg = self.next_event()
            if msg['method'] == 'Network.responseReceived' and msg['params'].get('type') == 'Document':
                status = msg['params']['response']['status']
            if msg['method'] == 'Page.loadEventFired':
                return status
        raise AssertionError('page did not load')

    def key(self, ch, wait_load=True):
        """Types one key as a person would (keyDown with its text, keyUp)."""
        code = 'Digit' + ch if ch.isdigit() else 'Key' + ch.upper()
        vk = ord(ch.upper())
        self.events.clear()
        self.call('Input.dispatchKeyEvent', type='keyDown', key=ch, code=code, text=ch, windowsVirtualKeyCode=vk)
        self.call('Input.dispatchKeyEvent', type='keyUp', key=ch, code=code, windowsVirtualKeyCode=vk)
        return self._loaded() if wait_load else None

    def click(self, selector):
        """Clicks an element (a submit button) and waits for the page it leads to; its HTTP status."""
        self.events.clear()
        self.eval('document.querySelector(%s).click()' % json.dumps(selector))
        return self._loaded()

    def eval(self, expr):
        r = self.call('Runtime.evaluate', expression=expr, returnByValue=True, awaitPromise=True)
        if 'exceptionDetails' in r:
            raise AssertionError('JS error in %s: %s' % (expr, r['exceptionDetails']))
        return r['result'].get('value')

    def wait_js(self, expr, timeout=30, what=None):
        end = time.time() + timeout * SLOW
        while time.time() < end:
            v = self.eval(expr)
            if v:
                return v
            time.sleep(0.1)
        raise AssertionError('timed out waiting for %s' % (what or expr))

    def clear_cookies(self):
        self.call('Network.clearBrowserCookies')

    def screenshot(self, name):
        """Saves ARTIFACTS/name.png and returns its path, after checking that it is not blank."""
        os.makedirs(ARTIFACTS, exist_ok=True)
        path = os.path.join(ARTIFACTS, name + '.png')
        data = base64.b64decode(self.call('Page.captureScreenshot', format='png')['data'])
        with open(path, 'wb') as f:
            f.write(data)
        assert_not_blank(path)
        return path

    def close(self):
        try:
            if getattr(self, 'ws', None):
                self.ws.close()
        finally:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            shutil.rmtree(self.profile, ignore_errors=True)


def assert_not_blank(png):
    """A screenshot shows something: its grey levels vary (a blank page is one colour)."""
    import numpy as np
    raw = subprocess.run(['ffmpeg', '-nostdin', '-v', 'error', '-i', png, '-f', 'rawvideo', '-pix_fmt', 'gray', '-'],
                         check=True, capture_output=True).stdout
    px = np.frombuffer(raw, dtype=np.uint8)
    assert px.size > 10000, '%s: only %d pixels' % (png, px.size)
    values, counts = np.unique(px, return_counts=True)
    assert px.std() > 5 and counts.max() < 0.995 * px.size, '%s is blank (std %.2f)' % (png, px.std())
