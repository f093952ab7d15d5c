#!/usr/bin/env python3
"""Alternating A/B runs of `warren bench --json`: medians of calls/s and of CPU per call by
role, and the pair-by-pair ratios (A and B alternate, so a drift of the machine's speed moves
both). Bounded: RUNS pairs of SECONDS each.
usage: python3 bench/ab.py RUNS SECONDS -- ARGS_A... -- ARGS_B...
  e.g. python3 bench/ab.py 8 3s -- --observe --
  W (the warren binary, default target/release/warren), or W_A / W_B for two binaries;
  ENV_A / ENV_B: extra environment, 'K=V K2=V2'. AMQP_URL is unset: pass --url."""
import json, os, subprocess, sys, statistics as st
runs, secs = int(sys.argv[1]), sys.argv[2]
rest = sys.argv[4:]
i = rest.index('--')
a, b = rest[:i], rest[i+1:]
W = os.environ.get('W', os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'target', 'release', 'warren'))
def env(var):
    e = dict(os.environ); e.pop('AMQP_URL', None)
    for kv in os.environ.get(var, '').split():
        k, v = kv.split('=', 1); e[k] = v
    return e
res = {'A': [], 'B': []}
for r in range(runs):
    for name, args in (('A', a), ('B', b)) if r % 2 == 0 else (('B', b), ('A', a)):
        out = subprocess.run([os.environ.get('W_' + name, W), 'bench', '--duration', secs, '--json', *args], env=env('ENV_' + name),
                             capture_output=True, text=True, timeout=120)
        d = json.loads(out.stdout)
        res[name].append(d)
def med(name, f):
    return st.median(f(d) for d in res[name])
keys = [('calls/s', lambda d: d['calls_per_sec'])] + [
    (k, (lambda k: lambda d: d['cpu_us_per_call'][k])(k)) for k in ('client', 'worker', 'broker', 'other', 'process')]
print('median of %d runs each, %s each' % (runs, secs))
for k, f in keys:
    ma, mb = med('A', f), med('B', f)
    print(f'{k:10} A {ma:10.2f}  B {mb:10.2f}  A/B {ma/mb:.3f}')
# paired ratios
pr = [x['calls_per_sec']/y['calls_per_sec'] for x, y in zip(res['A'], res['B'])]
pc = [x['cpu_us_per_call']['process']/y['cpu_us_per_call']['process'] for x, y in zip(res['A'], res['B'])]
print('paired calls/s A/B median %.3f (min %.3f max %.3f)' % (st.median(pr), min(pr), max(pr)))
print('paired cpu/call A/B median %.3f (min %.3f max %.3f)' % (st.median(pc), min(pc), max(pc)))
