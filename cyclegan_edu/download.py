"""Getting the official CycleGAN datasets and pretrained generators from the network, safely.

The datasets of the paper's experiments (Zhu et al. 2017, Section 5) and the generators the authors
trained on them are served from efrosgans.eecs.berkeley.edu. Here a download

* streams to a ``.part`` file with a progress bar and resumes where it broke off (an HTTP ``Range``
  request; a server that ignores it and sends the whole file again is fine: we start over),
* is checked against ``Content-Length`` and renamed into place atomically only when complete,
* is unpacked only after the archive passed its CRC test and every member was screened for paths
  that would land outside the target folder ("zip slip"): absolute paths, ``..``, links,
* never replaces what a user already has without ``force``, and then only once the new copy is whole.

Every failure is a :class:`DownloadError` whose message is one line naming the URL or file and
what to do; a request that cannot be served as given (an unknown name, a bad timeout or URL, a copy
that exists, cityscapes) is its subclass :class:`DownloadRequestError`. Nothing else in the book
needs the network: ``python -m cyclegan_edu toy --list``.
"""
from __future__ import annotations

import contextlib
import http.client
import math
import os
import re
import shutil
import stat
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

DATASET_URL_BASE = "https://efrosgans.eecs.berkeley.edu/cyclegan/datasets"            # + /{name}.zip
PRETRAINED_URL_BASE = "https://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models"  # + /{name}.pth

# The names of the official datasets/download_cyclegan_dataset.sh, with what each one holds.
DATASETS = {
    "apple2orange": "ImageNet photos of apples and of oranges (object transfiguration)",
    "summer2winter_yosemite": "Flickr photos of Yosemite in summer and in winter (season transfer)",
    "horse2zebra": "ImageNet photos of horses and of zebras (object transfiguration)",
    "monet2photo": "Monet paintings and Flickr landscape photos (collection style transfer)",
    "cezanne2photo": "Cezanne paintings and Flickr landscape photos (collection style transfer)",
    "ukiyoe2photo": "ukiyo-e woodblock prints and Flickr landscape photos (collection style transfer)",
    "vangogh2photo": "Van Gogh paintings and Flickr landscape photos (collection style transfer)",
    "maps": "aerial photos and Google Maps renderings of the same places (aligned pairs)",
    "cityscapes": "street photos and their semantic label maps (manual download only: licence)",
    "facades": "CMP building facade photos and their architectural label maps (aligned pairs)",
    "iphone2dslr_flower": "flower photos taken with iPhones and with DSLRs at shallow depth of field",
    "ae_photos": "a few test photos by Alexei Efros, for trying the style_* generators",
    "mini": "a tiny unpaired dataset used by the official repository's smoke tests",
    "mini_pix2pix": "a tiny paired (pix2pix) dataset used by the official repository's smoke tests",
    "mini_colorization": "a tiny colorization dataset used by the official repository's smoke tests",
}

# The generators of the official scripts/download_cyclegan_model.sh: what each one translates.
PRETRAINED = {
    "horse2zebra": "horse photo -> zebra",
    "zebra2horse": "zebra photo -> horse",
    "apple2orange": "apple photo -> orange",
    "orange2apple": "orange photo -> apple",
    "summer2winter_yosemite": "Yosemite in summer -> in winter",
    "winter2summer_yosemite": "Yosemite in winter -> in summer",
    "monet2photo": "Monet painting -> photo",
    "style_monet": "photo -> Monet painting",
    "style_cezanne": "photo -> Cezanne painting",
    "style_ukiyoe": "photo -> ukiyo-e print",
    "style_vangogh": "photo -> Van Gogh painting",
    "map2sat": "Google Maps rendering -> aerial photo",
    "sat2map": "aerial photo -> Google Maps rendering",
    "cityscapes_photo2label": "street photo -> semantic label map",
    "cityscapes_label2photo": "semantic label map -> street photo",
    "facades_photo2label": "facade photo -> architectural label map",
    "facades_label2photo": "architectural label map -> facade photo",
    "iphone2dslr_flower": "iPhone flower photo -> DSLR look (shallow depth of field)",
}

OFFLINE_HINT = "no network? the offline domains need none: python -m cyclegan_edu toy --list"
CITYSCAPES_MANUAL = (
    "cityscapes cannot be downloaded automatically because its licence forbids redistribution: register at "
    "https://www.cityscapes-dataset.com, download gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip, "
    "then run datasets/prepare_cityscapes_dataset.py from the official repository "
    "junyanz/pytorch-CycleGAN-and-pix2pix")


class DownloadError(OSError):
    """A transfer, a server or an archive failed. The message is one line naming the URL or file and
    what to do. It is an OSError, like the network and file errors it stands for."""


class DownloadRequestError(DownloadError, ValueError):
    """The request cannot be served as given: an unknown name, a timeout that is not a positive number,
    a malformed URL, a copy that exists (without ``force``), cityscapes (manual download only).
    Changing the request helps, running it again does not. Also a ValueError, so the command line
    reports it as a user error (exit status 2, where network and server failures are 1)."""


def download_file(url: str, dest: str | os.PathLike, *, timeout: float = 30, chunk_size: int = 1 << 20,
                  progress: bool = True) -> Path:
    """Stream ``url`` to ``dest`` with a progress bar, resuming a ``dest.part`` left by an earlier try.

    The bytes go to ``dest.part``; only a transfer whose size matches ``Content-Length`` is renamed to
    ``dest``. A resume asks for ``Range: bytes=N-``: 206 with that range appends; any other answer
    starts over from the first byte; 416 means the part is already whole if the server's size equals it.
    ``timeout`` (seconds) bounds every wait for the server, not the whole transfer.
    """
    _check_url(url)
    _check_timeout(timeout)
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    response = _open(url, offset, timeout)
    if response is None:  # 416: the part already holds every byte the server has
        os.replace(part, dest)
        return dest
    with response:
        resuming = offset > 0 and response.status == 206
        if resuming and not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
            response.close()  # a range we did not ask for: start over
            part.unlink()
            return download_file(url, dest, timeout=timeout, chunk_size=chunk_size, progress=progress)
        offset = offset if resuming else 0  # a 200 answer carries the whole file
        dest.parent.mkdir(parents=True, exist_ok=True)  # only now: a failed request leaves no folder behind
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        received = offset
        with open(part, "ab" if resuming else "wb") as out, \
                tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                     desc=dest.name, disable=not progress) as bar:
            try:
                while chunk := response.read(chunk_size):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as err:
                why = f"timed out after {timeout} s" if isinstance(err, TimeoutError) else _one_line(err)
                raise DownloadError(f"transfer of {url} broke off after {received} bytes ({why}); "
                                    "run again to resume") from None
    if total is not None and received != total:
        raise DownloadError(f"transfer of {url} broke off after {received} of {total} bytes; run again to resume")
    os.replace(part, dest)
    return dest


def _open(url: str, offset: int, timeout: float):
    """The server's response to GET ``url`` (from byte ``offset`` when it is > 0), or None when the
    server answers 416 because ``offset`` is already its full size."""
    try:
        request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        err.close()
        if err.code == 416 and offset:
            if _total_from_content_range(err.headers.get("Content-Range")) == offset:
                return None
            return _open(url, 0, timeout)  # the part does not fit the file on the server: start over
        raise DownloadError(f"HTTP {err.code} {err.reason} from {url}; check the name and --url-base") from None
    except http.client.InvalidURL as err:  # spaces or control characters in the URL
        raise _bad_url(url, err) from None
    except (OSError, http.client.HTTPException) as err:  # URLError (no route, refused, DNS), time-outs
        reason = getattr(err, "reason", err)
        if isinstance(reason, TimeoutError):
            raise DownloadError(f"timed out after {timeout} s waiting for {url}; run again to retry") from None
        raise DownloadError(f"cannot reach {url} ({_one_line(reason)}); {OFFLINE_HINT}") from None


def _total_from_content_range(header: str | None) -> int | None:
    """The full size in a ``Content-Range: bytes */SIZE`` (or ``bytes A-B/SIZE``) header."""
    match = re.fullmatch(r"bytes [^/]+/(\d+)", (header or "").strip())
    return int(match.group(1)) if match else None


def safe_extract_zip(archive: str | os.PathLike, target: str | os.PathLike) -> list[Path]:
    """Unpack ``archive`` into the new folder ``target`` and return the files written.

    The archive's CRCs are tested and every member is screened first, so a corrupt archive or one
    with an absolute path, a drive letter, a ``..`` component, a link or another special file raises
    :class:`DownloadError` before anything is written. Extraction goes to a hidden sibling folder
    renamed to ``target`` at the end, so an interrupted run leaves no half-filled ``target``.
    """
    archive, target = Path(archive), Path(target)
    if target.exists():
        raise DownloadRequestError(f"{target} already exists; extract into a folder that does not exist yet")
    corrupt = f"{archive} is corrupt or incomplete"
    staging = target.with_name(f".{target.name}.partial")
    try:
        with zipfile.ZipFile(archive) as zf:
            if (bad := zf.testzip()) is not None:
                raise DownloadError(f"{corrupt} (CRC error in {bad!r})")
            members = zf.infolist()
            for member in members:
                if reason := _unsafe_reason(member):
                    raise DownloadError(f"refusing to extract {archive}: member {member.filename!r} {reason} "
                                        "(it could write outside the target folder)")
            shutil.rmtree(staging, ignore_errors=True)  # left over from a run that was killed
            staging.mkdir(parents=True)
            try:
                zf.extractall(staging)
                os.replace(staging, target)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError) as err:
        # RuntimeError: an encrypted member; NotImplementedError: an unknown compression method
        raise DownloadError(f"{corrupt} ({_one_line(err)})") from None
    return [target / member.filename for member in members if not member.is_dir()]


def _unsafe_reason(member: zipfile.ZipInfo) -> str | None:
    """Why extracting ``member`` could write outside the target folder, or None if it cannot."""
    name = member.filename.replace("\\", "/")
    kind = stat.S_IFMT(member.external_attr >> 16)  # Unix file type; 0 when the zip was made elsewhere
    if kind == stat.S_IFLNK:
        return "is a symbolic link"
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "is a special file"
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        return "has an absolute path"
    if ".." in PurePosixPath(name).parts:
        return "climbs out of the folder with '..'"
    return None


def download_dataset(name: str, root: str | os.PathLike = "./datasets", *, url_base: str | None = None,
                     force: bool = False, timeout: float = 30, progress: bool = True) -> Path:
    """Download the official dataset ``name`` to ``root/name`` (``trainA``, ``trainB``, ``testA``, ``testB``).

    An existing non-empty ``root/name`` is kept unless ``force``; with ``force`` it is replaced only
    after the new copy was extracted completely. The zip is deleted once unpacked, and also when it
    is corrupt or unsafe (then the next run downloads it afresh).
    """
    if name == "cityscapes":
        raise DownloadRequestError(CITYSCAPES_MANUAL)
    _check_known(name, DATASETS, "dataset")
    _check_timeout(timeout)
    root = Path(root)
    target = root / name
    if target.is_file() or (target.is_dir() and any(target.iterdir()) and not force):
        raise DownloadRequestError(f"{target} already exists and is not empty; pass --force (force=True) to replace it")
    archive = download_file(f"{(url_base or DATASET_URL_BASE).rstrip('/')}/{name}.zip", root / f"{name}.zip",
                            timeout=timeout, progress=progress)
    unpacked = root / f".{name}.unpacked"
    shutil.rmtree(unpacked, ignore_errors=True)  # left over from a run that was killed
    try:
        safe_extract_zip(archive, unpacked)
    except DownloadError as err:
        archive.unlink()
        raise DownloadError(f"{err}; it was deleted, run again to download it afresh") from None
    try:
        inner = unpacked / name  # the official zips hold one top folder named like the dataset
        source = inner if list(unpacked.iterdir()) == [inner] and inner.is_dir() else unpacked
        _move_into_place(source, target)
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)
    archive.unlink()
    return target


def _move_into_place(source: Path, target: Path) -> None:
    """Rename ``source`` to ``target``; an existing ``target`` is set aside first and deleted after
    (or put back if the rename fails)."""
    if not target.exists():
        os.replace(source, target)
        return
    previous = target.with_name(f".{target.name}.previous")
    shutil.rmtree(previous, ignore_errors=True)
    os.replace(target, previous)
    try:
        os.replace(source, target)
    except BaseException:
        os.replace(previous, target)
        raise
    shutil.rmtree(previous)


def download_pretrained(name: str, root: str | os.PathLike = "./checkpoints", *, url_base: str | None = None,
                        force: bool = False, timeout: float = 30, progress: bool = True) -> Path:
    """Download the official generator ``name`` to ``root/{name}_pretrained/latest_net_G.pth``
    (where the official test.py looks for it).

    The new file is loaded once with :func:`cyclegan_edu.pretrained.load_generator`; if that fails it
    is deleted and :class:`DownloadError` says why. An existing file is kept unless ``force``, and then
    replaced only by a download that loaded.
    """
    _check_known(name, PRETRAINED, "pretrained generator")
    _check_timeout(timeout)
    from .pretrained import load_generator  # imports torch: only once there is work to do
    dest = Path(root) / f"{name}_pretrained" / "latest_net_G.pth"
    if dest.exists() and not force:
        raise DownloadRequestError(f"{dest} already exists; pass --force (force=True) to replace it")
    url = f"{(url_base or PRETRAINED_URL_BASE).rstrip('/')}/{name}.pth"
    fresh = download_file(url, dest.with_name(dest.name + ".download"), timeout=timeout, progress=progress)
    try:
        load_generator(fresh)
    except Exception as err:
        fresh.unlink()
        with contextlib.suppress(OSError):  # the folder, if this download made it
            fresh.parent.rmdir()
        raise DownloadError(f"{url} is not a usable generator, the download was deleted ({_one_line(err)})") \
            from None
    os.replace(fresh, dest)
    return dest


def dataset_folder(name: str, root: str | os.PathLike = "./datasets", **kwargs) -> Path:
    """The folder of the official dataset ``name`` under ``root``: downloaded the first time
    (:func:`download_dataset`, ``kwargs`` passed on), reused afterwards without a request. A folder
    counts as there when it holds ``trainA`` or ``train``. Chapter 10."""
    target = Path(root) / name
    if (target / "trainA").is_dir() or (target / "train").is_dir():
        return target
    return download_dataset(name, root, **kwargs)


def pretrained_weights(name: str, root: str | os.PathLike = "./checkpoints", **kwargs) -> Path:
    """The official generator file ``name`` under ``root`` (``{name}_pretrained/latest_net_G.pth``):
    downloaded the first time (:func:`download_pretrained`), reused afterwards. Chapter 10."""
    dest = Path(root) / f"{name}_pretrained" / "latest_net_G.pth"
    return dest if dest.is_file() else download_pretrained(name, root, **kwargs)


def _check_known(name: str, known: dict[str, str], what: str) -> None:
    if name not in known:
        raise DownloadRequestError(f"unknown {what} {name!r}; choose one of: {', '.join(known)}")


def _check_url(url: str) -> None:
    """Refuse a URL that is not http(s)://server/...: urllib would report "unknown url type" or
    "no host given" as if the network were down."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number from 0 to 65535)
    except ValueError as err:
        raise _bad_url(url, err) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _bad_url(url, "no http:// or https:// server")


def _bad_url(url: str, why: object) -> DownloadRequestError:
    return DownloadRequestError(f"bad URL {url!r} ({_one_line(why)}); --url-base must start with http:// or https://")


def _check_timeout(timeout: float) -> None:
    """A time-out must be a positive, finite number of seconds: urllib reads 0 as "do not wait" (and
    then fails as if the server were unreachable) and refuses negative numbers and NaN."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < math.inf:
        raise DownloadRequestError(f"timeout {timeout!r} (--timeout): the seconds to wait for the server must be "
                                   "a positive number, e.g. --timeout 30")


def _one_line(err: object, limit: int = 300) -> str:
    """``str(err)`` on one line, shortened to ``limit`` characters (torch's load errors span many)."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[:limit - 1] + "…"
