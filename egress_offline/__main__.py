from egress_offline.cli import run

run()
