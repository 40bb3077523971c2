"""The taskschema example service: orders and notifications as contracted Celery tasks."""
