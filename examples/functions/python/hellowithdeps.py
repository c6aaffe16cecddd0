import hoist_greeting


def handler(event, context):
    return hoist_greeting.greet("deps")
