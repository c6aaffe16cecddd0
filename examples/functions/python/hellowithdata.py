def handler(event, context):
    print(event, flush=True)
    return event["data"]
