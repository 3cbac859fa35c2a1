"""The focused application on Windows: the foreground window's executable name, never its title."""

from __future__ import annotations

import ntpath
from typing import Protocol

from agent.errors import SourceUnavailable


class ForegroundApi(Protocol):
    """The three Win32 calls this needs, so the OS edge can be replaced by a small fake."""

    def foreground_pid(self) -> int | None: ...

    def image_path(self, pid: int) -> str | None: ...


class CtypesForegroundApi:
    """GetForegroundWindow -> GetWindowThreadProcessId -> QueryFullProcessImageNameW."""

    PROCESS_QUERY_LIMITED_INFORMATION = 0x1000

    def __init__(self) -> None:
        import ctypes
        from ctypes import wintypes

        try:
            self._user32 = ctypes.WinDLL("user32", use_last_error=True)  # type: ignore[attr-defined]
            self._kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
        except (AttributeError, OSError):
            raise SourceUnavailable("the Windows focus backend only runs on Windows") from None
        self._ctypes = ctypes
        self._wintypes = wintypes

    def foreground_pid(self) -> int | None:
        hwnd = self._user32.GetForegroundWindow()
        if not hwnd:
            return None
        pid = self._wintypes.DWORD()
        self._user32.GetWindowThreadProcessId(hwnd, self._ctypes.byref(pid))
        return int(pid.value) or None

    def image_path(self, pid: int) -> str | None:
        handle = self._kernel32.OpenProcess(self.PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
        if not handle:
            return None
        try:
            size = self._wintypes.DWORD(1024)
            buffer = self._ctypes.create_unicode_buffer(size.value)
            if not self._kernel32.QueryFullProcessImageNameW(handle, 0, buffer, self._ctypes.byref(size)):
                return None
            return str(buffer.value)
        finally:
            self._kernel32.CloseHandle(handle)


class WindowsFocusBackend:
    def __init__(self, api: ForegroundApi | None = None) -> None:
        self._api = api if api is not None else CtypesForegroundApi()

    def focused_names(self) -> tuple[str | None, ...]:
        pid = self._api.foreground_pid()
        if pid is None:
            return ()
        path = self._api.image_path(pid)
        if not path:
            return ()
        # Only the executable's name is used (the folder is never kept); ".exe" is dropped later.
        return (ntpath.basename(path),)

    def close(self) -> None:
        return None
