"""Load tests with Locust: locustfiles for the simulator's `/v1` (`simulator_mix.py`) and the
reference integration's order-to-cash API (`order_to_cash.py`), fault phases applied through the
control plane on schedule and thresholds that decide the exit code (`common.py`), the money
checks through the scenario runner's invariants (`invariants.py`), and `sandbank load run`
(`runner.py`). HTTP only: nothing here imports the simulator or the integration."""
