"""ELF programs, for handcar debug: the one thing read in one, the program interpreter
(PT_INTERP) that a dynamically linked program names (e.g. /lib64/ld-linux-x86-64.so.2; a
static program names none), and the one written, a launcher (below)."""

import os

PT_INTERP = 3
MAX_INTERPRETER = 4096


def interpreter(path):
    """The interpreter `path` names, None for a static ELF program or a file that is not
    an ELF program (a script, say). OSError when it cannot be read."""
    return _read(path)[1]


def is_static(path):
    """Whether `path` is an ELF program that names no interpreter (it runs anywhere)."""
    program, named = _read(path)
    return program and named is None


def _read(path):
    """(whether `path` is an ELF program whose headers are all there, its interpreter)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return _headers(fd)
    finally:
        os.close(fd)


def _headers(fd):
    header = os.pread(fd, 64, 0)
    if len(header) < 52 or header[:4] != b"\x7fELF" or header[4] not in (1, 2):
        return False, None
    wide = header[4] == 2                          # ELFCLASS64
    order = "little" if header[5] == 1 else "big"

    def number(data, offset, size):
        return int.from_bytes(data[offset:offset + size], order)

    if wide:
        table, entry_size, count = number(header, 32, 8), number(header, 54, 2), \
            number(header, 56, 2)
    else:
        table, entry_size, count = number(header, 28, 4), number(header, 42, 2), \
            number(header, 44, 2)
    if entry_size < (56 if wide else 32):
        return False, None
    entries = os.pread(fd, entry_size * count, table)
    if len(entries) < entry_size * count:
        return False, None                         # cut short
    for index in range(count):
        entry = entries[index * entry_size:(index + 1) * entry_size]
        if number(entry, 0, 4) != PT_INTERP:
            continue
        offset, size = (number(entry, 8, 8), number(entry, 32, 8)) if wide else \
            (number(entry, 4, 4), number(entry, 16, 4))
        name = os.pread(fd, min(size, MAX_INTERPRETER), offset)
        return True, os.fsdecode(name.split(b"\0", 1)[0])
    return True, None


# --- launchers ------------------------------------------------------------------------------

# A launcher is a tiny static program that runs a fixed command line with its own
# arguments after it: execve(prefix[0], prefix + argv[1:], envp), or exit status 127.
# handcar debug makes one for each dynamically linked program of an image, to run it
# with the image's own loader (`ld.so --library-path DIRS PROGRAM`) wherever the
# container lacks that loader. Its data (after the code) is the number of strings in the
# prefix, as 8 bytes, then the strings, each ending with a NUL. The x86-64 code, from
# `as` (GNU assembler, Intel syntax):
#
#    mov rcx, [rsp]             ; argc          lea rsi, [rsp+8]       ; argv
#    lea rdx, [rsi+rcx*8+8]     ; envp          lea r8, [rip+data]     ; the prefix
#    mov r9, [r8]               ; its count     add r8, 8              ; its first string
#    lea rax, [r9+rcx+1]        ; new argv: count + argc + 1 pointers, below the stack
#    shl rax, 3                 sub rsp, rax    and rsp, -16
#    mov rdi, rsp               ; where the next pointer goes       mov r10, rsp
# 1: test r9, r9                jz 3f           ; each string of the prefix:
#    mov [rdi], r8              add rdi, 8
# 2: inc r8                     cmp byte ptr [r8-1], 0             jne 2b   ; past its NUL
#    dec r9                     jmp 1b
# 3: test rcx, rcx              jz 4f           add rsi, 8         ; then argv[1:]
# 4: mov rax, [rsi]             mov [rdi], rax  add rsi, 8         add rdi, 8
#    test rax, rax              jnz 4b          ; (its NULL included)
#    mov rdi, [r10]             mov rsi, r10    mov eax, 59        syscall  ; execve
#    mov edi, 127               mov eax, 60     syscall            ; exit(127)
# data:
LAUNCHER_CODE = {"x86_64": bytes.fromhex(
    "488b0c24488d742408488d54ce084c8d056d0000004d8b084983c008498d44090148c1e003"
    "4829c44883e4f04889e74989e24d85c974164c89074883c70849ffc0418078ff0075f649ff"
    "c9ebe54885c974044883c608488b064889074883c6084883c7084885c075ed498b3a4c89d6"
    "b83b0000000f05bf7f000000b83c0000000f05")}
_ELF_MACHINE = {"x86_64": 0x3E}
_BASE = 0x400000                  # where the one segment is loaded
_HEADERS = 64 + 56                # the ELF header and the one program header


def has_launchers(machine=None):
    """Whether launcher() can make a program for this (or `machine`'s) architecture."""
    return (machine or os.uname().machine) in LAUNCHER_CODE


def launcher(prefix, machine=None):
    """The bytes of a static ELF program that runs `prefix` (a list of strings: the
    program's path, then arguments) with its own arguments after them."""
    machine = machine or os.uname().machine
    code = LAUNCHER_CODE[machine]
    data = len(prefix).to_bytes(8, "little") + b"".join(
        os.fsencode(text) + b"\0" for text in prefix)
    size = _HEADERS + len(code) + len(data)
    header = (b"\x7fELF\x02\x01\x01" + bytes(9)                      # 64-bit, LSB, SysV
              + (2).to_bytes(2, "little")                              # ET_EXEC
              + _ELF_MACHINE[machine].to_bytes(2, "little")
              + (1).to_bytes(4, "little")                              # EV_CURRENT
              + (_BASE + _HEADERS).to_bytes(8, "little")               # entry: the code
              + (64).to_bytes(8, "little") + bytes(8)                  # phoff, shoff
              + bytes(4)                                               # flags
              + (64).to_bytes(2, "little") + (56).to_bytes(2, "little")
              + (1).to_bytes(2, "little") + bytes(6))                  # 1 phdr, no shdrs
    segment = ((1).to_bytes(4, "little") + (5).to_bytes(4, "little")  # PT_LOAD, R+X
               + bytes(8)                                              # from offset 0
               + _BASE.to_bytes(8, "little") * 2
               + size.to_bytes(8, "little") * 2 + (0x1000).to_bytes(8, "little"))
    return header + segment + code + data
