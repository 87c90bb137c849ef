"""`python -m pandasim`: the simulator standalone (the same command as `prodpanel panda-sim`)."""

from pandasim.cli import panda_sim

panda_sim(prog_name="python -m pandasim")
