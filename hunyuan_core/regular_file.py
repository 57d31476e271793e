"""Opening files in the data folder without following symbolic links.

The data folder may be writable by an operator's scripts, so a name the service
owns (`jobs/<id>.json`, `videos/<id>.mp4`, `logs/<id>.log`) may turn out to be a
symbolic link, a directory or a FIFO. The service reads only regular files, and
checks that on the file it actually opened: the name is opened with O_NOFOLLOW
(a link in its last component is refused by the kernel, not by an earlier check
that a swap could race), and the open file is then asked what it is. Links in
the folders above are followed, so an operator may still put `videos/` on
another disk.
"""

import errno
import os
import shutil
import stat

# O_NONBLOCK: opening a FIFO for reading must not wait for a writer.
_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class NotARegularFile(OSError):
    """The name exists but is not a regular file; `kind` says what it is instead."""

    def __init__(self, path, kind):
        super().__init__(f"{path} is {kind}, not a regular file")
        self.kind = kind


def _kind(mode):
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISLNK(mode):
        return "a symbolic link (links are not followed)"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device or other special file"


def open_regular(path):
    """Open `path` for binary reading if it is a regular file; returns `(file, os.stat_result)`.

    Raises FileNotFoundError when nothing has that name, NotARegularFile for a
    symbolic link (never followed), directory, FIFO or device, and OSError for
    any other failure.
    """
    try:
        fd = os.open(path, _FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP and os.path.islink(path):
            raise NotARegularFile(path, _kind(stat.S_IFLNK)) from None
        if exc.errno == errno.ENXIO:  # a socket
            raise NotARegularFile(path, _kind(stat.S_IFSOCK)) from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotARegularFile(path, _kind(info.st_mode))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb"), info
    except BaseException:
        os.close(fd)
        raise


def remove(path):
    """Remove whatever has the name `path` (a file, a link, or a directory tree); no error if absent.

    A link is removed itself, never what it points to.
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    try:
        if stat.S_ISDIR(info.st_mode):
            shutil.rmtree(path)  # never follows links inside the tree either
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass  # removed meanwhile
