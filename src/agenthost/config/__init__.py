"""Configuration sections: pydantic models with their validation, and no behaviour.

One module per area; `agenthost.settings` assembles them into `Settings` and loads them from
`agenthost.toml`, the environment and `*_FILE` secrets. Nothing here imports another agenthost
package (config modules are leaves of the architecture; `make test` checks it), so any layer may
read its own section without pulling in the rest.

* `server`: `[server]`; `durability`: `[durability]`; `storage`: `[redis]`
* `models`: `[models.<name>]`, `[local]`; `agents`: `[agents.<name>]` and their tools
* `gateway`: `[gateway]`, `[cache]`, `[routing]`
* `costs`: `[limits]`, `[ledger]`, `[budgets]`, `[alerts]`, `[batch]`
* `auth`: `[auth]`, `[auth.jwt]`; `roles`: `[roles.<name>]`, tool risk levels
* `security`: `[redaction]`, `[rate_limits]`, `[screening]`, `[retention]`
* `observability`: `[logging]`
"""
