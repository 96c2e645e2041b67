"""A hand-assembled classic-BPF seccomp filter for sandboxed processes (no libseccomp).

:func:`program` returns the filter as bubblewrap's ``--seccomp`` expects it: ``struct
sock_filter`` records in native byte order. The filter accepts x86_64 and aarch64 only (any
other architecture, including i386 and x32 system calls on an x86_64 kernel, kills the
process), refuses with ``EPERM`` the system calls that administer the kernel, mounts,
namespaces, keys, modules or other processes' memory, refuses namespace flags in ``clone``,
answers ``ENOSYS`` to ``clone3`` (whose flags a classic filter cannot read, so that libc
falls back to ``clone``) and refuses the terminal-injecting ``ioctl`` commands ``TIOCSTI``
and ``TIOCLINUX``.
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass

# BPF opcodes (linux/bpf_common.h) and seccomp constants (linux/seccomp.h, linux/audit.h).
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_RET_KILL_PROCESS = 0x80000000
_OFFSET_NR = 0
_OFFSET_ARCH = 4


def _offset_arg_low(index: int) -> int:
    """Offset of the low 32 bits of syscall argument ``index`` (little-endian ABIs only)."""
    return 16 + 8 * index


_DENIED_NAMES = [
    "mount",
    "umount2",
    "pivot_root",
    "swapon",
    "swapoff",
    "reboot",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "keyctl",
    "add_key",
    "request_key",
    "setns",
    "unshare",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "open_by_handle_at",
    "name_to_handle_at",
    "iopl",
    "ioperm",
    "acct",
    "lookup_dcookie",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
]

_CLONE_NAMESPACE_FLAGS = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
_TIOCSTI = 0x5412
_TIOCLINUX = 0x541C
_X32_SYSCALL_BIT = 0x40000000


@dataclass(frozen=True, slots=True)
class _Arch:
    audit_arch: int
    syscalls: dict[str, int]
    has_x32: bool


_X86_64 = _Arch(
    audit_arch=0xC000003E,
    has_x32=True,
    syscalls={
        "ioctl": 16, "clone": 56, "ptrace": 101, "pivot_root": 155, "acct": 163, "mount": 165,
        "umount2": 166, "swapon": 167, "swapoff": 168, "reboot": 169, "iopl": 172,
        "ioperm": 173, "init_module": 175, "delete_module": 176, "lookup_dcookie": 212,
        "kexec_load": 246, "add_key": 248, "request_key": 249, "keyctl": 250, "unshare": 272,
        "perf_event_open": 298, "name_to_handle_at": 303, "open_by_handle_at": 304,
        "setns": 308, "process_vm_readv": 310, "process_vm_writev": 311, "finit_module": 313,
        "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323, "open_tree": 428,
        "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
        "clone3": 435, "mount_setattr": 442,
    },
)  # fmt: skip

_AARCH64 = _Arch(
    audit_arch=0xC00000B7,
    has_x32=False,
    syscalls={
        "lookup_dcookie": 18, "ioctl": 29, "umount2": 39, "mount": 40, "pivot_root": 41,
        "acct": 89, "unshare": 97, "kexec_load": 104, "init_module": 105,
        "delete_module": 106, "ptrace": 117, "reboot": 142, "add_key": 217,
        "request_key": 218, "keyctl": 219, "clone": 220, "swapon": 224, "swapoff": 225,
        "perf_event_open": 241, "name_to_handle_at": 264, "open_by_handle_at": 265,
        "setns": 268, "process_vm_readv": 270, "process_vm_writev": 271, "finit_module": 273,
        "bpf": 280, "userfaultfd": 282, "kexec_file_load": 294, "open_tree": 428,
        "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
        "clone3": 435, "mount_setattr": 442,
    },
)  # fmt: skip


class _Assembler:
    """Instructions with symbolic jump targets, resolved to BPF's relative offsets."""

    def __init__(self) -> None:
        self._code: list[tuple[int, str | int, str | int, int]] = []
        self._labels: dict[str, int] = {}

    def label(self, name: str) -> None:
        self._labels[name] = len(self._code)

    def load(self, offset: int) -> None:
        self._code.append((_LD_W_ABS, 0, 0, offset))

    def jump(self, op: int, k: int, *, true: str | int = 0, false: str | int = 0) -> None:
        self._code.append((op, true, false, k))

    def ret(self, value: int) -> None:
        self._code.append((_RET_K, 0, 0, value))

    def assemble(self) -> bytes:
        out = bytearray()
        for index, (op, jt, jf, k) in enumerate(self._code):
            out += struct.pack("=HBBI", op, self._target(index, jt), self._target(index, jf), k)
        return bytes(out)

    def _target(self, index: int, target: str | int) -> int:
        if isinstance(target, int):
            return target
        offset = self._labels[target] - index - 1
        if not 0 <= offset <= 255:
            raise ValueError(f"seccomp jump to {target} out of range")
        return offset


def _arch_block(asm: _Assembler, arch: _Arch, prefix: str) -> None:
    calls = arch.syscalls
    asm.label(prefix)
    asm.load(_OFFSET_NR)
    if arch.has_x32:
        asm.jump(_JGE_K, _X32_SYSCALL_BIT, true="kill")
    asm.jump(_JEQ_K, calls["clone3"], true="enosys")
    asm.jump(_JEQ_K, calls["clone"], true=f"{prefix}.clone")
    asm.jump(_JEQ_K, calls["ioctl"], true=f"{prefix}.ioctl")
    for name in _DENIED_NAMES:
        if name in calls:
            asm.jump(_JEQ_K, calls[name], true="eperm")
    asm.ret(_RET_ALLOW)
    asm.label(f"{prefix}.clone")
    asm.load(_offset_arg_low(0))
    asm.jump(_JSET_K, _CLONE_NAMESPACE_FLAGS, true="eperm")
    asm.ret(_RET_ALLOW)
    asm.label(f"{prefix}.ioctl")
    asm.load(_offset_arg_low(1))
    asm.jump(_JEQ_K, _TIOCSTI, true="eperm")
    asm.jump(_JEQ_K, _TIOCLINUX, true="eperm")
    asm.ret(_RET_ALLOW)


def program() -> bytes:
    """The filter, ready to hand to ``bwrap --seccomp FD``."""
    asm = _Assembler()
    asm.load(_OFFSET_ARCH)
    asm.jump(_JEQ_K, _X86_64.audit_arch, true="x86_64")
    asm.jump(_JEQ_K, _AARCH64.audit_arch, true="aarch64", false="kill")
    _arch_block(asm, _X86_64, "x86_64")
    _arch_block(asm, _AARCH64, "aarch64")
    asm.label("eperm")
    asm.ret(_RET_ERRNO | errno.EPERM)
    asm.label("enosys")
    asm.ret(_RET_ERRNO | errno.ENOSYS)
    asm.label("kill")
    asm.ret(_RET_KILL_PROCESS)
    return asm.assemble()
