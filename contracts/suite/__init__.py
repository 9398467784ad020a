"""The provider contract suite: schemathesis against `contracts/openapi.yaml`.

Run it with `make contract`, `sandbank contract [--base-url URL]` or `pytest contracts/suite`.
In-process by default; set CONTRACT_BASE_URL (and CONTRACT_API_KEY, or CONTRACT_ADMIN_TOKEN to
create an account) to test any running server. The control plane is not part of this contract.
"""
