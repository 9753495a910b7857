// Command chaos is the fault-injection suite (`make chaos`, and `make
// chaos-short` in CI). It owns one question: what survives a crash.
//
// It starts the real stack with devstack (the pinned Temporal dev server,
// topsim, the worker with its HTTP ingress), drives a few hundred policy
// lifecycles through the ingress the way an insurer's business system would
// — re-sending an event on a 503 or a broken connection until it gets an
// answer, with the same body and so the same request id — and meanwhile
// kills the worker with SIGKILL every few seconds, has topsim answer with
// isp.* errors, hangs past the client timeout and one code-7 ban, stops and
// restarts the Temporal server once, sends illegal and duplicate events and
// parks the callbacks of some policies. Then it lets the stack settle,
// retries the parked callbacks through `starter retry`, and checks, from
// topsim's receipt log, the store and Temporal visibility, that nothing was
// lost, reordered, invented or left unrecorded. Each check is a figure; a
// failed invariant names its biz_ids and makes the command exit 1.
package main
