import time


def forever(event, context):
    while True:
        time.sleep(1)
