# Status and headers set by the function, with bottle's response types as Kubeless functions
# use them (bottle must be installed, as in Kubeless's image).
import bottle


def handler(event, context):
    if event["extensions"]["request"].query.get("missing"):
        raise bottle.HTTPError(404, "no such greeting")
    return bottle.HTTPResponse(body="created", status=201, headers={"X-Greeting": "made"})
