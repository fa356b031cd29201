"""A scale-out in simulated time: the app's real handlers over moto, with AWS's delays modelled.

`python -m simulation.scale_out --hosts 1000 --throttle 0.2 --seed 13 [--app DIR] --out FILE.json`

A discrete-event simulation. Time is a simulated clock: a priority queue of timed happenings (a batch of
hosts launched, a host's SSM agent coming online, its ECS agent registering, a mount finishing on the host,
an event reaching a handler, a retry message picked up, the sweeper's schedule) drives everything, and the
clock jumps to the next one. Each happening runs for real against moto in this process; what it makes AWS
emit (events, retry messages, mount commands) becomes later happenings, after the delays AWS would take.

Per host (one seeded draw per host, the same whichever app runs): when its SSM agent comes online, when
its ECS agent registers, and how long its mount takes. The figures are in simulated seconds; the app's
AWS calls are counted while its handlers run. `--app DIR` runs the app in DIR (app.py, chalicelib/,
.chalice/) instead of this working tree's; the simulation itself always comes from this working tree.

What is modelled, and where it is an assumption, is said where it is modelled (`Model`, in model.py) and in
the output's "note". Nothing here is shipped.

model.py draws the hosts and holds AWS's delays; process.py sets this process up (the app, botocore, the
clock seam) over clock.py and execution_environments.py; event_loop.py runs the happenings; figures.py and
runs.py make the figures of a burst and of one host alone; __main__.py is the command line.
"""
