; A switch through a jump table behind its bounds check (bt translates such a table
; into one of host addresses, which depends on the table's bytes as on code):
;   1. dispatch every case and the default, through the table;
;   2. rewrite an entry of the table: the next rounds must go where it now says;
;   3. store again and again beside the table, on its page (bt stops translating the
;      tables of a page where such stores keep trapping).
; Each case adds to ebx; the exit code says whether the sum is right.
; expect-exit: 0
bits 32
        xor ebx, ebx
        mov edi, 3
round:  xor esi, esi
calls:  mov edx, esi
        call dispatch
        inc esi
        cmp esi, 5                          ; index 4 is out of range: the default
        jb calls
        mov ecx, 40                         ; 3. stores beside the table
beside: inc dword ptr [counter]
        loop beside
        mov eax, case_c                     ; 2. entry 1: case_b -> case_c
        mov dword ptr [table + 4], eax
        dec edi
        jnz round
        cmp ebx, 33513
        setne al
        out 0xf4, al
        hlt

dispatch:
        cmp edx, 3
        ja default
        jmp dword ptr [table + edx*4]
case_a: add ebx, 1
        ret
case_b: add ebx, 10
        ret
case_c: add ebx, 100
        ret
case_d: add ebx, 1000
        ret
default:
        add ebx, 10000
        ret

        .align 4096
table:  .long case_a, case_b, case_c, case_d
counter:
        .long 0
