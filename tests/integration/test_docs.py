"""Man pages and bash completion against the programs: the pages built by
docs/mkman.py render without groff warnings (lintian's check) and hold every
line of every --help text; every option the parsers accept (their getopt
tables in ctl/*.c, daemon/main.c, workers/main.c), every dfew.conf key (lib/config.c)
and every job kind (lib/queue.c) is documented; dfewctl's completion offers its commands, keywords and
options, and every option it offers is one the command really accepts.
A help text, parser, config key or completion that drifts from the others
fails here."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from dfewtest import BUILD, SOURCE, main

DOCS = os.path.join(BUILD, 'docs')
DFEWCTL = os.path.join(BUILD, 'dfewctl')
DFEWD = os.path.join(BUILD, 'dfewd')
DFEW_WEB = os.path.join(BUILD, 'web', 'dfew-web')
DFEW_WORKER = os.path.join(BUILD, 'dfew-worker')
ENV = dict(os.environ, LC_ALL='C.UTF-8', ASAN_OPTIONS='detect_leaks=0')


def run(*argv, env=ENV):
    return subprocess.run(list(argv), capture_output=True, text=True, env=env, timeout=60)


def help_of(*words):
    r = run(DFEWCTL, *words, '--help')
    if r.returncode != 0:
        raise AssertionError('dfewctl %s --help exited %d: %s' % (' '.join(words), r.returncode, r.stderr))
    return r.stdout


def rendered(page):
    """The page as man shows it, with hyphens and minus signs as '-'."""
    if not shutil.which('man'):
        raise unittest.SkipTest('man (package man-db) is not installed')
    r = run('man', '-l', '-Tutf8', os.path.join(DOCS, page), env=dict(ENV, MANWIDTH='200', MAN_KEEP_FORMATTING=''))
    if r.returncode != 0:
        raise AssertionError('man -l %s: %s' % (page, r.stderr))
    text = re.sub(r'.\x08', '', r.stdout)  # overstrike bold/underline
    return text.replace('\u2010', '-').replace('\u2212', '-').replace('\u2019', "'").replace('\u2018', '`')


def squash(text):
    return ' '.join(text.split())


def commands():
    """The command names dfewctl --help lists."""
    body = help_of().split('Commands:\n', 1)[1]
    names = []
    for line in body.split('\n'):
        if not line.strip():
            break
        m = re.match(r'^  ([a-z]+)', line)
        if m and m.group(1) not in names:
            names.append(m.group(1))
    return names


def keywords(cmd, text):
    """The keywords (sub-commands, record types) of a command's usage lines."""
    words = []
    for line in text.split('\n\n', 1)[0].split('\n'):
        m = re.match(r'^(?:usage:)?\s*dfewctl %s \[?([a-z][a-z0-9|]*)\]?(?: |$)' % cmd, line)
        for w in m.group(1).split('|') if m else []:
            if w not in words:
                words.append(w)
    return words


def help_options(text):
    """The long options a help text names anywhere (usage and option lines)."""
    return set(re.findall(r'(?<![\w-])(--[a-z][a-z0-9-]*)', text))


def parser_options(path):
    """The long option names of the getopt_long tables in a C file."""
    with open(path) as f:
        src = f.read()
    names = set(re.findall(r'\{"([a-z][a-z0-9-]*)",\s*(?:no|required|optional)_argument', src))
    if 'CTL_COMMON_LONGOPTS' in src:
        names |= {'home', 'json'}
    # options compared by hand (strcmp(argv[i], "--x")) count too
    names |= set(re.findall(r'strcmp\(argv\[[^]]+\], "--([a-z][a-z0-9-]*)"\)', src))
    return {'--' + n for n in names}


def completion(*words):
    """What bash offers for `dfewctl WORDS...<TAB>` (the last word is the one
    being completed) with the built completion script."""
    script = os.path.join(DOCS, 'dfewctl')
    line = ['dfewctl'] + list(words)
    prog = ('source %s\nCOMP_WORDS=(%s)\nCOMP_CWORD=%d\n_dfewctl\nprintf "%%s\\n" "${COMPREPLY[@]}"\n'
            % (script, ' '.join("'%s'" % w for w in line), len(line) - 1))
    r = run('bash', '--norc', '--noprofile', '-c', prog)
    if r.returncode != 0:
        raise AssertionError('completion of %r failed: %s' % (line, r.stderr))
    return set(x for x in r.stdout.split('\n') if x)


class ManPageTest(unittest.TestCase):
    PAGES = ['dfewctl.1', 'dfewd.8', 'dfew-worker.8', 'dfew.conf.5'] + (['dfew-web.8'] if os.path.exists(DFEW_WEB)
                                                                        else [])

    def test_pages_render_without_warnings(self):
        if not shutil.which('man'):
            self.skipTest('man (package man-db) is not installed')
        for page in self.PAGES:
            path = os.path.join(DOCS, page)
            self.assertTrue(os.path.exists(path), path)
            # lintian's groff-message check
            r = run('man', '--warnings', '-E', 'UTF-8', '-l', '-Tutf8', '-Z', path,
                    env=dict(ENV, MANROFFSEQ='', MANWIDTH='80'))
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stderr.strip(), '', '%s: groff warnings' % page)
            with open(path) as f:
                self.assertRegex(f.readline() + f.readline(), r'\.TH %s ' % re.escape(page.rsplit('.', 1)[0].upper()))

    def test_dfewctl_page_holds_every_help_text(self):
        page = squash(rendered('dfewctl.1'))
        texts = [('', help_of())]
        for cmd in commands():
            text = help_of(cmd)
            texts.append((cmd, text))
            for w in keywords(cmd, text):
                sub = run(DFEWCTL, cmd, w, '--help')
                if sub.returncode == 0 and sub.stdout != text:
                    texts.append((cmd + ' ' + w, sub.stdout))
        self.assertGreater(len(texts), 20)
        for name, text in texts:
            for line in text.split('\n'):
                if line.strip():
                    self.assertIn(squash(re.sub(r'^usage: ', '', line)), page,
                                  'dfewctl %s --help: line missing from dfewctl(1)' % name)

    def test_dfewd_page_holds_its_help(self):
        page = squash(rendered('dfewd.8'))
        r = run(DFEWD, '--help')
        self.assertEqual(r.returncode, 0)
        self.assertNotIn('more to come', r.stdout)
        for line in r.stdout.split('\n'):
            if line.strip():
                self.assertIn(squash(re.sub(r'^usage: ', '', line)), page, 'dfewd --help line missing from dfewd(8)')

    def test_dfew_web_page_holds_its_help(self):
        if not os.path.exists(DFEW_WEB):
            self.skipTest('dfew-web is not built (libmicrohttpd-dev missing)')
        page = squash(rendered('dfew-web.8'))
        r = run(DFEW_WEB, '--help')
        self.assertEqual(r.returncode, 0)
        for line in r.stdout.split('\n'):
            if line.strip():
                self.assertIn(squash(re.sub(r'^usage: ', '', line)), page,
                              'dfew-web --help line missing from dfew-web(8)')
        for opt in parser_options(os.path.join(SOURCE, 'web', 'main.c')):
            self.assertIn(opt, help_options(page), 'dfew-web parses %s but dfew-web --help does not name it' % opt)

    def test_dfew_worker_page_holds_its_help(self):
        r = run(DFEW_WORKER, '--help')
        self.assertEqual(r.returncode, 0, 'dfew-worker --help exited %d: %s' % (r.returncode, r.stderr))
        self.assertRegex(r.stdout, r'^usage: dfew-worker')
        page = squash(rendered('dfew-worker.8'))
        for line in r.stdout.split('\n'):
            if line.strip():
                self.assertIn(squash(re.sub(r'^usage: ', '', line)), page,
                              'dfew-worker --help line missing from dfew-worker(8)')
        v = run(DFEW_WORKER, '--version')
        self.assertEqual(v.returncode, 0, v.stderr)
        self.assertRegex(v.stdout, r'^dfew-worker \S+ \(protocol \d+\)')
        bad = run(DFEW_WORKER, '--zz-no-such-option')
        self.assertEqual(bad.returncode, 2)
        self.assertIn('usage: dfew-worker', bad.stderr)

    def test_every_parsed_option_is_documented(self):
        ctl_page = rendered('dfewctl.1')
        documented = help_options(ctl_page)
        ctl_dir = os.path.join(SOURCE, 'ctl')
        for name in sorted(os.listdir(ctl_dir)):
            if name.endswith('.c'):
                for opt in parser_options(os.path.join(ctl_dir, name)):
                    self.assertIn(opt, documented, 'ctl/%s parses %s but no dfewctl --help names it' % (name, opt))
        dfewd_page = rendered('dfewd.8')
        for opt in parser_options(os.path.join(SOURCE, 'daemon', 'main.c')):
            self.assertIn(opt, help_options(dfewd_page), 'dfewd parses %s but dfewd --help does not name it' % opt)
        worker_page = rendered('dfew-worker.8')
        worker_opts = parser_options(os.path.join(SOURCE, 'workers', 'main.c'))
        # what dfewd (pool.c, slurm.c) starts it with must be among what it parses
        self.assertLessEqual({'--preload', '--one-job', '--check-storage', '--help', '--version'}, worker_opts)
        for opt in worker_opts:
            self.assertIn(opt, help_options(worker_page),
                          'dfew-worker parses %s but dfew-worker --help does not name it' % opt)

    def test_every_config_key_is_documented(self):
        rendered('dfew.conf.5')  # renders
        with open(os.path.join(DOCS, 'dfew.conf.5')) as f:
            sections = re.split(r'^\.SS \[([a-z]+)\]\n', f.read(), flags=re.M)
        documented = {}
        for sec, body in zip(sections[1::2], sections[2::2]):  # .TP tags: \fBkey\fR = default, ...
            documented[sec] = set(re.findall(r'\\fB([a-z_]+)\\fR(?: = |\n)', body))
        with open(os.path.join(SOURCE, 'lib', 'config.c')) as f:
            keys = re.findall(r'^\s*\{"([a-z]+)", "([a-z_]+)", K_', f.read(), re.M)
        self.assertGreater(len(keys), 30)
        for sec, key in keys:
            self.assertIn(key, documented.get(sec, set()), '[%s] %s is read by lib/config.c but not in dfew.conf(5)'
                          % (sec, key))

    def test_every_job_kind_is_documented(self):
        with open(os.path.join(SOURCE, 'lib', 'queue.c')) as f:
            kinds = re.search(r'job_kinds\[\] = \{([^}]*)\}', f.read()).group(1)
        kinds = re.findall(r'"([a-z_]+)"', kinds)
        self.assertIn('prep', kinds)
        dfewd = squash(run(DFEWD, '--help').stdout)
        conf = squash(rendered('dfew.conf.5'))
        limits = conf[conf.index('[limits]'):conf.index('[timeouts]')]
        for kind in kinds:
            self.assertRegex(dfewd, r'\b%s\b' % kind, 'job kind %s missing from dfewd --help' % kind)
            self.assertRegex(limits, r'\b%s\b' % kind, 'job kind %s missing from [limits] in dfew.conf(5)' % kind)


class CompletionTest(unittest.TestCase):
    def setUp(self):
        if not os.path.exists(os.path.join(DOCS, 'dfewctl')):
            self.fail('the completion script was not built: %s' % os.path.join(DOCS, 'dfewctl'))
        self.home = tempfile.mkdtemp(prefix='dfew-docs-')
        self.addCleanup(shutil.rmtree, self.home, True)

    def accepts(self, words, opt):
        """Whether dfewctl WORDS parses OPT: given as OPT=x (or -o x) before
        an unknown option, the parser names OPT only when it does not know
        it; the unknown option (or x as a bad value) stops the command before
        it does anything."""
        arg = [opt, 'x'] if not opt.startswith('--') else [opt + '=x']
        r = run(DFEWCTL, '--home', self.home, *words, *arg, '--zz-no-such-option')
        self.assertNotEqual(r.returncode, 0, 'dfewctl %s %s ran' % (' '.join(words), opt))
        self.assertNotEqual(r.stderr.strip(), '')
        bad = re.search(r"(unrecognized option '%s|invalid option -- '%s')" % (re.escape(opt), opt.lstrip('-')),
                        r.stderr)
        return not bad

    def test_commands(self):
        offered = completion('')
        for cmd in commands():
            self.assertIn(cmd, offered)
        self.assertEqual(completion('ex'), {'export'})
        self.assertEqual(completion('--home', '/tmp', 'la'), {'labels'})

    def test_keywords(self):
        self.assertEqual(completion('labels', ''), {'import', 'show', 'kappa'})
        self.assertEqual(completion('folds', ''), {'make', 'show', 'list', 'delete'})
        self.assertEqual(completion('show', 'm'), {'movie'})
        self.assertIn('table2', completion('report', ''))
        self.assertIn('dfew', completion('import', ''))

    def test_options_match_help_and_parser(self):
        checked = 0
        for cmd in commands():
            text = help_of(cmd)
            groups = []
            for w in keywords(cmd, text):
                sub = run(DFEWCTL, cmd, w, '--help')
                if sub.returncode == 0 and sub.stdout != text:
                    groups.append(([cmd, w], sub.stdout))
                    # 'report table2 [--csv]' is table2's option, not report's
                    text = '\n'.join(ln for ln in text.split('\n') if not re.match(r'^(usage:)?\s*dfewctl %s %s( |$)'
                                                                                   % (cmd, w), ln))
            groups.insert(0, ([cmd], text))
            for words, t in groups:
                offered = completion(*words, '-')
                # every option the help text names is offered ...
                for opt in help_options(t):
                    self.assertIn(opt, offered, 'dfewctl %s: help names %s, completion does not offer it'
                                  % (' '.join(words), opt))
                # ... and every option offered is one the command parses
                for opt in offered:
                    if opt in ('--help', '--home', '--json'):
                        continue
                    self.assertTrue(self.accepts(words, opt), 'dfewctl %s: completion offers %s, which it rejects'
                                    % (' '.join(words), opt))
                    checked += 1
        self.assertGreater(checked, 40)

    def test_files_after_file_options(self):
        d = tempfile.mkdtemp(dir=self.home)
        open(os.path.join(d, 'votes.csv'), 'w').close()
        self.assertEqual(completion('labels', 'import', os.path.join(d, 'vo')), {os.path.join(d, 'votes.csv')})
        self.assertEqual(completion('sheet', '3', '-o', os.path.join(d, 'v')), {os.path.join(d, 'votes.csv')})
        self.assertEqual(completion('--home', os.path.join(self.home, '')), {d})  # directories only


if __name__ == '__main__':
    main()
