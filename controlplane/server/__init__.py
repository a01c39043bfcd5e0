"""The process tree of `airdock serve`.

One command, several processes. The process `airdock serve` starts becomes a small supervisor:

- it takes the data dir's lock (`datadir`) before it writes anything, binds the listening
  socket, prepares what every child shares, and then starts, in order,
- the embedded AWS (when embedded; a moto process of its own, see environments.emulator),
- one background worker (`background`): the reconciler, DAG sync and DAG reports,
- N API workers (`api_worker`), forked from the prepared supervisor, all accepting on the one
  socket and doing nothing but serving requests.

`parts` restarts any child that dies, with exponential backoff, and records every part's state
in a small file (`status`) that the API's health endpoint reads. A write an API worker takes
wakes the background worker through a pipe (`wakeups`). Stopping goes in the reverse order:
API workers, then the background worker, then the dependencies.
"""
