"""Test support shared by tests/ and bench/: fault-injecting servers, a scripted judge, server processes on free
loopback ports, reference models and verl rollout batches. Never imported by `trm` (tests/test_import_graph.py).

    fault_server           FaultServer (latency, 500s, dropped connections), chat_completion, verifier_reply, dead_backend
    judge                  ScriptedJudge, a policy-driven OpenAI-compatible judge (`python -m trm_testing.judge`)
    serving                free_port, spawn/stop/running_server, asgi_client, reference forwards
    slow_model             a real `trm serve reward` whose forward is slower (`python -m trm_testing.slow_model`)
    rollout                rollout_batch: the DataProto verl hands the reward after generation
    training               the tiny TRM trained once per session on the toy pairs
    rule_check_workers     worker functions for WorkerPool fault tests ("trm_testing.rule_check_workers:NAME")
    rule_check_start_fault a worker module whose import hangs or is killed
    prompt_probe/          a sitecustomize that logs a chat server's prompt ids (put the folder on PYTHONPATH)
"""
