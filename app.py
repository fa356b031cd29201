"""efs-automount: the Chalice app's wiring. Each handler hands its event to chalicelib."""

import os

from chalice import Chalice, Rate

from chalicelib import entrypoints
from chalicelib.plumbing.events import (
    command_status_pattern,
    container_instance_pattern,
    launch_pattern,
    task_definition_registered_pattern,
)
from chalicelib.plumbing.observability import lambda_function_handler, lambda_handler
from chalicelib.plumbing.settings import DEFAULT_HOOK_NAME, DEFAULT_MOUNT_DOCUMENT

app = Chalice(app_name="efs-automount", configure_logs=False)

# Decorator arguments are the one place settings are read at import: they shape the EventBridge rules
# and the queue subscription. Chalice applies the stage's environment_variables when it builds them.
HOOK_NAME = os.environ.get("HOOK_NAME") or DEFAULT_HOOK_NAME
MOUNT_DOCUMENT = os.environ.get("MOUNT_DOCUMENT") or DEFAULT_MOUNT_DOCUMENT
RETRY_QUEUE_URL = os.environ.get("RETRY_QUEUE_URL", "")


@app.on_cw_event(launch_pattern(HOOK_NAME), name="on_launch")
@lambda_handler
def on_launch(event, context):
    return entrypoints.handle_launch(event)


@app.on_cw_event(command_status_pattern(MOUNT_DOCUMENT), name="on_command_status")
@lambda_handler
def on_command_status(event, context):
    return entrypoints.handle_command_status(event)


@app.on_cw_event(container_instance_pattern(), name="on_container_instance")
@lambda_handler
def on_container_instance(event, context):
    return entrypoints.handle_container_instance_change(event)


@app.on_cw_event(task_definition_registered_pattern(), name="on_task_definition")
@lambda_handler
def on_task_definition(event, context):
    return entrypoints.handle_task_definition_registered(event, context)


@app.schedule(Rate(1, unit=Rate.MINUTES), name="sweeper")
@lambda_handler
def sweeper(event, context):
    return entrypoints.handle_sweep(event)


@app.schedule(Rate(1, unit=Rate.HOURS), name="checks")
@lambda_handler
def checks(event, context):
    return entrypoints.handle_checks(event)


@app.lambda_function(name="repair")
@lambda_function_handler
def repair(event, context):
    return entrypoints.handle_repair(event, context)


# Without a queue there is nothing to subscribe to: the sweeper carries retries then.
if RETRY_QUEUE_URL:

    @app.on_sqs_message(queue=RETRY_QUEUE_URL.rsplit("/", 1)[-1], batch_size=10, name="on_retry")
    @lambda_handler
    def on_retry(event, context):
        return entrypoints.handle_retries(event, context)


entrypoints.tolerate_malformed_envelopes(app)
