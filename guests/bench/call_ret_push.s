; Nanobenchmark: a call to a function that saves and restores a register, then returns.
; The push keeps bt from inlining the pair (a ret whose return address may have changed
; since the call goes through the indirect-branch map), as for most real functions.
; expect-halt
bits 32
        mov ecx, 1000           ; iterations (the benchmark sets its own)
l:      call f
        dec ecx
        jnz l
        cli
        hlt
f:      push ebx
        pop ebx
        ret
