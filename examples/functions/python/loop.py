# Kubeless's timeout-python verify: a loop that never yields, deployed with a short timeout.
def foo(event, context):
    while 1:
        pass
