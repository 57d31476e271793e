"""`hunyuan-video`: a command-line client of the HunyuanVideo REST API.

Standard library only (urllib, argparse), so it installs and starts anywhere in a
fraction of a second; it never imports the service or torch. The operator commands
(`hunyuan-ops`, in `ops/`) are the one part that stands on `hunyuan_core`, to work on
a data folder directly; the client (`main.py`) never imports them.

Exit codes (also in `hunyuan-video --help`):

    0  success
    1  the job did not complete: it failed, was canceled, or has no video yet
    2  bad command line
    3  the server refused the request (HTTP 4xx/5xx; its `detail` is printed)
    4  the server cannot be reached
    5  --timeout passed while waiting for the job
    6  the output file cannot be written
    130  interrupted (Ctrl-C); the job goes on on the server
"""

EXIT_OK = 0
EXIT_JOB_FAILED = 1
EXIT_USAGE = 2
EXIT_HTTP_ERROR = 3
EXIT_UNREACHABLE = 4
EXIT_TIMEOUT = 5
EXIT_LOCAL_FILE = 6
EXIT_INTERRUPTED = 130
