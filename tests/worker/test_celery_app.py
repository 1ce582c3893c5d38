from worker.celery import app


def test_it_routes_each_queue_by_its_own_key():
    queues = {queue.name: queue for queue in app.conf.task_queues}
    assert set(queues) == {"cpu", "gpu"}
    assert queues["gpu"].routing_key == "gpu" and queues["gpu"].exchange.name == "gpu"
    assert queues["cpu"].routing_key == "cpu"


def test_it_is_configured_for_long_tasks():
    assert app.conf.task_acks_late is True
    assert app.conf.worker_prefetch_multiplier == 1
    # longer than any training run, or Redis redelivers it while it still trains (celery#5935)
    assert app.conf.broker_transport_options["visibility_timeout"] >= 24 * 3600
