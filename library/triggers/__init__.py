"""What starts runs: events (GitHub webhooks, generic JSON events), trigger rules that turn an
event into runs (Taskotron's ``when``/``do``), GitHub signature checks and check runs."""
