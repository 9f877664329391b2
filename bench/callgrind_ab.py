"""Instructions per request, two tollgate binaries side by side, under callgrind.

Wall-clock figures on a shared 2-core VM move by 10-20% between runs;
instruction counts do not. Each binary serves N1 and then N2 sequential
requests of each scenario under `valgrind --tool=callgrind` (the mock runs
natively); (Ir(N2) - Ir(N1)) / (N2 - N1) is the cost of one request with
start-up and shutdown taken out.

    python3 bench/callgrind_ab.py BASE_BIN NEW_BIN [small,stream20,large,cross]
    python3 bench/callgrind_ab.py --auth BIN [scenarios]
    python3 bench/callgrind_ab.py --control BIN [scenarios]

With `--auth`, one binary twice: `base` without authentication
(`[auth] mode = "none"`: no auth layer), `new` with a key made by
`tollgate keys create` in its store and sent on every request, so
new - base is what checking a gateway key costs per request.

With `--control`, one binary twice: `base` with `--layers routing` and no
authentication (no rate limit, budget, usage or ledger layer), `new` with
the default layers, a key sent on every request and a global budget in
its store (set by `tollgate budgets set`), every request metered and
written to the ledger: new - base is what the control plane of issues 9
and 10 costs per request, the ledger's writer thread included.

Needs valgrind (apt). Takes about 4 minutes for the four scenarios.
"""
import sys, os, subprocess, time, json, signal, http.client, re, tempfile
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as B
CONTROL = sys.argv[1] == '--control'
AUTH = sys.argv[1] == '--auth' or CONTROL
# `--auth BIN`, `--control BIN` and `BASE NEW` all leave the scenarios in argv[3].
BINS = {'base': sys.argv[2 if AUTH else 1], 'new': sys.argv[2]}
LAYERS = {'base': ['--layers', 'routing'] if CONTROL else [], 'new': []}
SCEN_ARG = sys.argv[3] if len(sys.argv) > 3 else None
MOCK = 9391
N1, N2 = 20, 220
WORK = tempfile.mkdtemp(prefix='tollgate-callgrind-')
cfg = f'''
[server]
shutdown_grace_secs = 1
[providers.mock-openai]
kind = "openai"
base_url = "http://127.0.0.1:{MOCK}/v1"
api_key = "sk-bench-key-123456"
[providers.mock-anthropic]
kind = "anthropic"
base_url = "http://127.0.0.1:{MOCK}"
api_key = "sk-bench-key-123456"
'''
# Each side has its own data directory (XDG_DATA_HOME), where the default
# store lives; no [store] in the config, so builds from before it read it.
if CONTROL:
    # Under a hard budget a model without a price is refused, and the
    # mock's model names carry directives (`gpt-4o~chunks=20`): price each
    # provider's models as a whole.
    cfg = cfg.replace('kind = "openai"\n', 'kind = "openai"\nprice = { input = 2.5, output = 10.0 }\n')
    cfg = cfg.replace('kind = "anthropic"\n', 'kind = "anthropic"\nprice = { input = 3.0, output = 15.0 }\n')
DATA = {name: f'{WORK}/{name}-data' for name in BINS}
for name in BINS:
    no_auth = '[auth]\nmode = "none"\n' if AUTH and name == 'base' else ''
    open(f'{WORK}/{name}.toml', 'w').write(cfg + no_auth)
KEY = None
if AUTH:
    KEY = subprocess.run([BINS['new'], 'keys', 'create', '--name', 'bench', '--store',
                          f"{DATA['new']}/tollgate/tollgate.db"],
                         capture_output=True, text=True, check=True).stdout.strip()
    if CONTROL:
        subprocess.run([BINS['new'], 'budgets', 'set', '--global', '--usd', '1000000',
                        '--period', 'monthly', '--store', f"{DATA['new']}/tollgate/tollgate.db"],
                       capture_output=True, text=True, check=True)
def headers_for(name, hdr):
    if not (AUTH and name == 'new'):
        return hdr
    return {k: (f'Bearer {KEY}' if k == 'authorization' else KEY if k == 'x-api-key' else v)
            for k, v in hdr.items()}
SCEN_ALL = {
 'small': ('/v1/chat/completions', B.openai_chat_body('mock-openai/gpt-4o', False), {'authorization': 'Bearer client-key-abcdef'}),
 'stream20': ('/v1/chat/completions', B.openai_chat_body('mock-openai/gpt-4o~chunks=20', True), {'authorization': 'Bearer client-key-abcdef'}),
 'large': ('/v1/messages', B.claude_code_body('mock-anthropic/claude-sonnet-4-5'), {'x-api-key': 'client-key-abcdef', 'anthropic-version': '2023-06-01'}),
 'cross': ('/v1/chat/completions', B.openai_chat_body('mock-anthropic/claude-sonnet-4-5', True), {'authorization': 'Bearer client-key-abcdef'}),
}
SCEN = {k: SCEN_ALL[k] for k in (SCEN_ARG or 'small,stream20,large,cross').split(',')}
def wait_port(p):
    for _ in range(600):
        try:
            c = http.client.HTTPConnection('127.0.0.1', p, timeout=1); c.request('GET', '/health'); c.getresponse().read(); return
        except Exception: time.sleep(0.1)
    raise SystemExit('port')
mock = subprocess.Popen([BINS['new'], 'mock-upstream', '--listen', f'127.0.0.1:{MOCK}'], stderr=subprocess.DEVNULL)
time.sleep(0.5)
res = {}
try:
    for scen, (path, body, hdr) in SCEN.items():
        data = json.dumps(body).encode()
        for name, binp in BINS.items():
            irs = {}
            for n in (N1, N2):
                port = 9400 + n
                out = f'{WORK}/{scen}-{name}-{n}.out'
                gw = subprocess.Popen(['valgrind', '--tool=callgrind', f'--callgrind-out-file={out}', binp, 'serve', '--config', f'{WORK}/{name}.toml', '--listen', f'127.0.0.1:{port}', *LAYERS[name]], stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env={**os.environ, 'RUST_LOG': 'warn', 'XDG_DATA_HOME': DATA[name]})
                wait_port(port)
                c = http.client.HTTPConnection('127.0.0.1', port, timeout=60)
                for i in range(n):
                    c.request('POST', path, body=data, headers={'content-type': 'application/json', **headers_for(name, hdr)})
                    r = c.getresponse(); b = r.read()
                    assert r.status == 200, (scen, name, r.status, b[:300])
                c.close()
                gw.send_signal(signal.SIGTERM); gw.wait(timeout=120)
                txt = subprocess.run(['callgrind_annotate', out], capture_output=True, text=True).stdout
                m = re.search(r'([\d,]+)\s+\(100.0%\)\s+PROGRAM TOTALS', txt) or re.search(r'([\d,]+)\s+PROGRAM TOTALS', txt)
                irs[n] = int(m.group(1).replace(',', ''))
            per = (irs[N2] - irs[N1]) / (N2 - N1)
            res[(scen, name)] = per
            print(f'{scen:9} {name:5} {per:12,.0f} Ir/request', flush=True)
finally:
    mock.terminate()
for scen in SCEN:
    print(f'{scen:9} new/base = {res[(scen,"new")]/res[(scen,"base")]:.3f}')
