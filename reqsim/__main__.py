"""`python -m reqsim`: the simulator standalone (the same command as `prodpanel requests-sim`)."""

from reqsim.cli import requests_sim

requests_sim(prog_name="python -m reqsim")
