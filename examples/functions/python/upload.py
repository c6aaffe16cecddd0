# A multipart form through the request object, as Kubeless's `request.py` example reads one:
# a header, a query argument, a form field and an uploaded file saved to disk.
import os
import tempfile


def handler(event, context):
    request = event["extensions"]["request"]
    name = request.get_header("Say-Hello-To", "kubeless")
    greeting = request.query.get("greeting", "Hello")
    category = request.forms.get("category")
    upload = request.files.get("upload")
    folder = os.path.join(os.environ.get("UPLOAD_DIR", tempfile.gettempdir()), category)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, upload.filename)
    upload.save(path, overwrite=True)
    return f"{greeting} {name}: saved {category}/{upload.filename} ({os.path.getsize(path)} bytes)"
