# The STOMP broker of the task-status queue tests: the machine's RabbitMQ with its STOMP plugin on
# 127.0.0.1:61613. Included by the Makefile; `make test` depends on broker (idempotent, quick when up).
STOMP_PORT ?= 61613
STOMP_UP = python3 -c "import socket; socket.create_connection(('127.0.0.1', $(STOMP_PORT)), 1).close()" 2>/dev/null

.PHONY: broker
broker:
	@if ! $(STOMP_UP); then \
	  command -v rabbitmq-plugins >/dev/null || { echo "broker: RabbitMQ is not installed; the queue tests need its STOMP plugin on 127.0.0.1:$(STOMP_PORT)"; exit 1; }; \
	  rabbitmqctl -q status >/dev/null 2>&1 || { echo "starting RabbitMQ"; rabbitmq-server -detached && rabbitmqctl -q await_startup; } \
	    || { echo "broker: RabbitMQ is not running and could not be started (rabbitmq-server -detached)"; exit 1; }; \
	  rabbitmq-plugins -q enable rabbitmq_stomp >/dev/null \
	    || { echo "broker: could not enable RabbitMQ's STOMP plugin (rabbitmq-plugins enable rabbitmq_stomp)"; exit 1; }; \
	  for i in $$(seq 60); do $(STOMP_UP) && exit 0; sleep 0.5; done; \
	  echo "broker: nothing listens on 127.0.0.1:$(STOMP_PORT) after enabling rabbitmq_stomp"; exit 1; \
	fi
