"""Group rules of the ISA table: reviewed lists of ordinary instructions.

Most of the 1523 instruction names capstone 5 knows are ordinary user-mode
computation -- integer ALU, x87, MMX/SSE/AVX/AVX-512, cryptographic and
bit-manipulation extensions.  Giving each its own row would bury the ~150
instructions that matter to a monitor, so they are grouped here instead.

Every group is an *explicit, sorted list of capstone instruction names*
(``capstone.Cs.insn_name(id)``), never a pattern applied at run time: a
capstone upgrade that adds a name leaves it uncovered, the coverage test in
``tests/isa/test_table.py`` fails, and someone has to decide where it belongs.
(The lists were first drafted from name prefixes -- "f" for x87, "v" for
VEX/EVEX, "k" for opmask -- and then reviewed by hand; the test re-checks the
prefix invariants, e.g. that no VMX/SVM name beginning with "vm" landed in the
AVX group and that FXSAVE/XSAVE are not filed under x87.)

Each group carries one :class:`~dbt.isa.model.Rule` with the reason that holds
for every member and where to read about them.  All groups except the
near-branch group are INNOCUOUS/IDENT: their members touch only user-visible
registers, flags and memory, and whatever faults they raise (#UD, #NM, #MF,
#XM, #BR, #GP on misalignment, page faults) are precise, so the monitor
reflects them to the guest like any other fault.  Instructions that are
privileged or sensitive are *not* here; they are explicit rows in
:mod:`dbt.isa.table`, which also rejects any name listed twice.

Citations follow the conventions of :mod:`dbt.isa.table`.
"""

from __future__ import annotations

from dataclasses import dataclass

from dbt.isa.model import Action, InsnClass, Rule


@dataclass(frozen=True)
class Group:
    """A reviewed list of instruction names that share one rule."""

    key: str  # short identifier, used in reports and tests
    title: str  # what the members are
    rule: Rule
    names: frozenset[str]


def _names(text: str) -> frozenset[str]:
    names = text.split()
    if len(set(names)) != len(names):
        raise ValueError("a group lists a name twice")
    return frozenset(names)


def _innocuous(reason: str, ref: str) -> Rule:
    return Rule(InsnClass.INNOCUOUS, Action.IDENT, reason, ref)


NEAR_BRANCH = Group(
    "near-branch",
    "Near conditional and counted branches (Jcc, JCXZ/JECXZ/JRCXZ, LOOP/LOOPE/LOOPNE)",
    Rule(
        InsnClass.CONTROL,
        Action.BRANCH,
        "near relative control transfer: the taken target must be mapped into the code cache",
        "Intel SDM Vol. 2A, Jcc; Vol. 2A, LOOP/LOOPcc",
    ),
    _names(
        """
        ja jae jb jbe jcxz je jecxz jg jge jl jle jne jno jnp jns jo jp jrcxz js loop loope
        loopne
        """
    ),
)

GP_INTEGER = Group(
    "gp-integer",
    "General-purpose integer arithmetic, logic, shifts, bit tests, flags and data movement",
    _innocuous(
        "integer instruction on general-purpose registers, arithmetic flags (and DF) and memory;"
        " touches no system state",
        "Intel SDM Vol. 1 ch. 7 (programming with general-purpose instructions)",
    ),
    # MOV, PUSH and POP are explicit rows (their segment/control-register forms
    # are sensitive).  PUSHA/POPA move only the eight general registers; LAHF/
    # SAHF only the arithmetic flags; CRC32 and MOVBE (SSE4.2 / MOVBE) work on
    # general registers.
    _names(
        """
        aaa aad aam aas adc add and bsf bsr bswap bt btc btr bts cbw cdq cdqe clc cld cmc cmova
        cmovae cmovb cmovbe cmove cmovg cmovge cmovl cmovle cmovne cmovno cmovnp cmovns cmovo
        cmovp cmovs cmp cmpxchg cmpxchg16b cmpxchg8b cqo crc32 cwd cwde daa das dec div enter
        idiv imul inc lahf lea leave movabs movbe movnti movsx movsxd movzx mul neg nop not or
        popal popaw pushal pushaw rcl rcr rol ror sahf sal salc sar sbb seta setae setb setbe
        sete setg setge setl setle setne setno setnp setns seto setp sets shl shld shr shrd stc
        std sub test xadd xchg xlatb xor
        """
    ),
)

STRING = Group(
    "string",
    "String instructions MOVS, CMPS, SCAS, LODS, STOS (all widths)",
    _innocuous(
        "string operation through (E/R)SI and (E/R)DI in segments the guest already loaded;"
        " REP forms share the rule (capstone's MOVSD and CMPSD also name the SSE2 scalar"
        " move/compare, equally innocuous)",
        "Intel SDM Vol. 1 ch. 7 (string instructions); Vol. 2A, CMPS, LODS; Vol. 2B, MOVS, SCAS,"
        " STOS",
    ),
    _names(
        """
        cmpsb cmpsd cmpsq cmpsw lodsb lodsd lodsq lodsw movsb movsd movsq movsw scasb scasd
        scasq scasw stosb stosd stosq stosw
        """
    ),
)

BIT_MANIPULATION = Group(
    "bit-manipulation",
    "BMI1, BMI2, ADX, LZCNT/POPCNT and AMD TBM",
    _innocuous(
        "bit-manipulation or multi-precision arithmetic extension on general-purpose registers",
        "Intel SDM Vol. 2A (ADCX, ADOX, ANDN, BEXTR, BLSI, BLSMSK, BLSR, BZHI, LZCNT), Vol. 2B"
        " (MULX, PDEP, PEXT, POPCNT, RORX, SARX/SHLX/SHRX, TZCNT); AMD APM Vol. 3 (TBM: BLCFILL"
        " ... TZMSK)",
    ),
    _names(
        """
        adcx adox andn bextr blcfill blci blcic blcmsk blcs blsfill blsi blsic blsmsk blsr bzhi
        lzcnt mulx pdep pext popcnt rorx sarx shlx shrx t1mskc tzcnt tzmsk
        """
    ),
)

CACHE_AND_ORDERING = Group(
    "cache-and-ordering",
    "Fences, cache-line hints, prefetches, PAUSE and direct stores",
    _innocuous(
        "memory-ordering fence, cache-line flush/write-back/demote/zero, prefetch hint, spin-wait"
        " hint or direct store: unprivileged and limited to memory the guest can already write",
        "Intel SDM Vol. 2A (CLDEMOTE, CLFLUSH, CLFLUSHOPT, CLWB, LFENCE), Vol. 2B (MFENCE,"
        " MOVDIRI, MOVDIR64B, PAUSE, PREFETCHh, PREFETCHW, SFENCE); AMD APM Vol. 3 (CLZERO,"
        " PREFETCH)",
    ),
    _names(
        """
        cldemote clflush clflushopt clwb clzero lfence mfence movdir64b movdiri pause prefetch
        prefetchnta prefetcht0 prefetcht1 prefetcht2 prefetchw prefetchwt1 sfence
        """
    ),
)

X87 = Group(
    "x87",
    "x87 FPU instructions (arithmetic, load/store, control word, environment, FWAIT)",
    _innocuous(
        "x87 FPU instruction: operates on the user-visible FPU stack, control/status/tag words and"
        " memory; #NM/#MF faults are precise",
        "Intel SDM Vol. 1 ch. 8 (programming with the x87 FPU); Vol. 2A, F2XM1 ... FYL2XP1",
    ),
    # Names beginning with "f" that are NOT here: FXSAVE/FXRSTOR(64) (group
    # user-state) and FEMMS (3DNow!).  WAIT (FWAIT) is here.  FSETPM and the
    # 8087 FDISI/FENI encodings are NOPs on 80387 and later FPUs.
    _names(
        """
        f2xm1 fabs fadd fbld fbstp fchs fcmovb fcmovbe fcmove fcmovnb fcmovnbe fcmovne fcmovnp
        fcmovnu fcmovu fcom fcomi fcomp fcompi fcompp fcos fdecstp fdisi8087_nop fdiv fdivp
        fdivr fdivrp feni8087_nop ffree ffreep fiadd ficom ficomp fidiv fidivr fild fimul
        fincstp fist fistp fisttp fisub fisubr fld fld1 fldcw fldenv fldl2e fldl2t fldlg2 fldln2
        fldpi fldz fmul fmulp fnclex fninit fnop fnsave fnstcw fnstenv fnstsw fpatan fprem
        fprem1 fptan frndint frstor fscale fsetpm fsin fsincos fsqrt fst fstp fstpnce fsub fsubp
        fsubr fsubrp ftst fucom fucomi fucomp fucompi fucompp fxam fxch fxtract fyl2x fyl2xp1
        wait
        """
    ),
)

USER_STATE = Group(
    "user-state",
    "FXSAVE/FXRSTOR and the user forms of XSAVE/XSAVEC/XSAVEOPT/XRSTOR",
    _innocuous(
        "saves or restores x87/SSE/AVX state components enabled in XCR0, all user state; the"
        " supervisor forms XSAVES/XRSTORS are explicit rows",
        "Intel SDM Vol. 1 ch. 13 (managing state using the XSAVE feature set); Vol. 2A, FXSAVE,"
        " FXRSTOR; Vol. 2D, XSAVE, XSAVEC, XSAVEOPT, XRSTOR",
    ),
    _names(
        """
        fxrstor fxrstor64 fxsave fxsave64 xrstor xrstor64 xsave xsave64 xsavec xsavec64 xsaveopt
        xsaveopt64
        """
    ),
)

MMX_SSE = Group(
    "mmx-sse",
    "Legacy-encoded MMX and SSE, SSE2, SSE3, SSSE3, SSE4.1, SSE4.2 (incl. LDMXCSR/STMXCSR)",
    _innocuous(
        "legacy-encoded SIMD arithmetic, conversion, shuffle or data movement on MMX/XMM"
        " registers and MXCSR: user-visible state only",
        "Intel SDM Vol. 1 ch. 9-12 (MMX, SSE, SSE2, SSE3/SSSE3/SSE4)",
    ),
    _names(
        """
        addpd addps addsd addss addsubpd addsubps andnpd andnps andpd andps blendpd blendps
        blendvpd blendvps cmppd cmpps cmpss comisd comiss cvtdq2pd cvtdq2ps cvtpd2dq cvtpd2pi
        cvtpd2ps cvtpi2pd cvtpi2ps cvtps2dq cvtps2pd cvtps2pi cvtsd2si cvtsd2ss cvtsi2sd
        cvtsi2ss cvtss2sd cvtss2si cvttpd2dq cvttpd2pi cvttps2dq cvttps2pi cvttsd2si cvttss2si
        divpd divps divsd divss dppd dpps emms extractps haddpd haddps hsubpd hsubps insertps
        lddqu ldmxcsr maskmovdqu maskmovq maxpd maxps maxsd maxss minpd minps minsd minss movapd
        movaps movd movddup movdq2q movdqa movdqu movhlps movhpd movhps movlhps movlpd movlps
        movmskpd movmskps movntdq movntdqa movntpd movntps movntq movq movq2dq movshdup movsldup
        movss movupd movups mpsadbw mulpd mulps mulsd mulss orpd orps pabsb pabsd pabsw packssdw
        packsswb packusdw packuswb paddb paddd paddq paddsb paddsw paddusb paddusw paddw palignr
        pand pandn pavgb pavgw pblendvb pblendw pcmpeqb pcmpeqd pcmpeqq pcmpeqw pcmpestri
        pcmpestrm pcmpgtb pcmpgtd pcmpgtq pcmpgtw pcmpistri pcmpistrm pextrb pextrd pextrq
        pextrw phaddd phaddsw phaddw phminposuw phsubd phsubsw phsubw pinsrb pinsrd pinsrq
        pinsrw pmaddubsw pmaddwd pmaxsb pmaxsd pmaxsw pmaxub pmaxud pmaxuw pminsb pminsd pminsw
        pminub pminud pminuw pmovmskb pmovsxbd pmovsxbq pmovsxbw pmovsxdq pmovsxwd pmovsxwq
        pmovzxbd pmovzxbq pmovzxbw pmovzxdq pmovzxwd pmovzxwq pmuldq pmulhrsw pmulhuw pmulhw
        pmulld pmullw pmuludq por psadbw pshufb pshufd pshufhw pshuflw pshufw psignb psignd
        psignw pslld pslldq psllq psllw psrad psraw psrld psrldq psrlq psrlw psubb psubd psubq
        psubsb psubsw psubusb psubusw psubw ptest punpckhbw punpckhdq punpckhqdq punpckhwd
        punpcklbw punpckldq punpcklqdq punpcklwd pxor rcpps rcpss roundpd roundps roundsd
        roundss rsqrtps rsqrtss shufpd shufps sqrtpd sqrtps sqrtsd sqrtss stmxcsr subpd subps
        subsd subss ucomisd ucomiss unpckhpd unpckhps unpcklpd unpcklps xorpd xorps
        """
    ),
)

SSE4A = Group(
    "sse4a",
    "AMD SSE4a",
    _innocuous(
        "AMD SSE4a bit-field extract/insert and scalar non-temporal stores on XMM registers",
        "AMD APM Vol. 4 (128-bit and 256-bit media instructions), EXTRQ, INSERTQ, MOVNTSD, MOVNTSS",
    ),
    _names(
        """
        extrq insertq movntsd movntss
        """
    ),
)

AMD_3DNOW = Group(
    "3dnow",
    "AMD 3DNow! and FEMMS",
    _innocuous(
        "AMD 3DNow! packed single-precision arithmetic on MMX registers",
        "AMD APM Vol. 5 (64-bit media and x87 floating-point instructions)",
    ),
    _names(
        """
        femms pavgusb pf2id pf2iw pfacc pfadd pfcmpeq pfcmpge pfcmpgt pfmax pfmin pfmul pfnacc
        pfpnacc pfrcp pfrcpit1 pfrcpit2 pfrsqit1 pfrsqrt pfsub pfsubr pi2fd pi2fw pmulhrw pswapd
        """
    ),
)

AVX = Group(
    "avx",
    "VEX/EVEX-encoded SIMD: AVX, AVX2, FMA, F16C, AVX-512 and its extensions",
    _innocuous(
        "VEX/EVEX-encoded SIMD instruction on XMM/YMM/ZMM registers, opmasks, MXCSR and memory:"
        " user-visible state only",
        "Intel SDM Vol. 1 ch. 14-15 (AVX, FMA, AVX2; AVX-512); Vol. 2A-2D (pages named after a"
        " legacy instruction cover its VEX/EVEX forms, V-only instructions are in 2C); Intel"
        " Architecture Instruction Set Extensions Programming Reference (AVX512_ER/PF/4FMAPS/"
        "4VNNIW)",
    ),
    # Not every name beginning with "v" is a vector instruction.  Excluded here
    # and given explicit rows: VMX (VMCALL, VMCLEAR, VMFUNC, VMLAUNCH, VMPTRLD,
    # VMPTRST, VMREAD, VMRESUME, VMWRITE, VMXOFF, VMXON), SVM (VMLOAD, VMMCALL,
    # VMRUN, VMSAVE) and the segment checks VERR/VERW.  The members that do begin
    # with "vm" are VMASKMOV*, VMAX*, VMIN*, VMOV*, VMPSADBW and VMUL*.  VEX/EVEX
    # AES, GFNI and VPCLMULQDQ are in group crypto; AMD XOP/FMA4 in group xop-fma4.
    _names(
        """
        v4fmaddps v4fmaddss v4fnmaddps v4fnmaddss vaddpd vaddps vaddsd vaddss vaddsubpd
        vaddsubps valignd valignq vandnpd vandnps vandpd vandps vblendmpd vblendmps vblendpd
        vblendps vblendvpd vblendvps vbroadcastf128 vbroadcastf32x2 vbroadcastf32x4
        vbroadcastf32x8 vbroadcastf64x2 vbroadcastf64x4 vbroadcasti128 vbroadcasti32x2
        vbroadcasti32x4 vbroadcasti32x8 vbroadcasti64x2 vbroadcasti64x4 vbroadcastsd
        vbroadcastss vcmp vcmppd vcmpps vcmpsd vcmpss vcomisd vcomiss vcompresspd vcompressps
        vcvtdq2pd vcvtdq2ps vcvtpd2dq vcvtpd2ps vcvtpd2qq vcvtpd2udq vcvtpd2uqq vcvtph2ps
        vcvtps2dq vcvtps2pd vcvtps2ph vcvtps2qq vcvtps2udq vcvtps2uqq vcvtqq2pd vcvtqq2ps
        vcvtsd2si vcvtsd2ss vcvtsd2usi vcvtsi2sd vcvtsi2ss vcvtss2sd vcvtss2si vcvtss2usi
        vcvttpd2dq vcvttpd2qq vcvttpd2udq vcvttpd2uqq vcvttps2dq vcvttps2qq vcvttps2udq
        vcvttps2uqq vcvttsd2si vcvttsd2usi vcvttss2si vcvttss2usi vcvtudq2pd vcvtudq2ps
        vcvtuqq2pd vcvtuqq2ps vcvtusi2sd vcvtusi2ss vdbpsadbw vdivpd vdivps vdivsd vdivss vdppd
        vdpps vexp2pd vexp2ps vexpandpd vexpandps vextractf128 vextractf32x4 vextractf32x8
        vextractf64x2 vextractf64x4 vextracti128 vextracti32x4 vextracti32x8 vextracti64x2
        vextracti64x4 vextractps vfixupimmpd vfixupimmps vfixupimmsd vfixupimmss vfmadd132pd
        vfmadd132ps vfmadd132sd vfmadd132ss vfmadd213pd vfmadd213ps vfmadd213sd vfmadd213ss
        vfmadd231pd vfmadd231ps vfmadd231sd vfmadd231ss vfmaddsub132pd vfmaddsub132ps
        vfmaddsub213pd vfmaddsub213ps vfmaddsub231pd vfmaddsub231ps vfmsub132pd vfmsub132ps
        vfmsub132sd vfmsub132ss vfmsub213pd vfmsub213ps vfmsub213sd vfmsub213ss vfmsub231pd
        vfmsub231ps vfmsub231sd vfmsub231ss vfmsubadd132pd vfmsubadd132ps vfmsubadd213pd
        vfmsubadd213ps vfmsubadd231pd vfmsubadd231ps vfnmadd132pd vfnmadd132ps vfnmadd132sd
        vfnmadd132ss vfnmadd213pd vfnmadd213ps vfnmadd213sd vfnmadd213ss vfnmadd231pd
        vfnmadd231ps vfnmadd231sd vfnmadd231ss vfnmsub132pd vfnmsub132ps vfnmsub132sd
        vfnmsub132ss vfnmsub213pd vfnmsub213ps vfnmsub213sd vfnmsub213ss vfnmsub231pd
        vfnmsub231ps vfnmsub231sd vfnmsub231ss vfpclasspd vfpclassps vfpclasssd vfpclassss
        vgatherdpd vgatherdps vgatherpf0dpd vgatherpf0dps vgatherpf0qpd vgatherpf0qps
        vgatherpf1dpd vgatherpf1dps vgatherpf1qpd vgatherpf1qps vgatherqpd vgatherqps vgetexppd
        vgetexpps vgetexpsd vgetexpss vgetmantpd vgetmantps vgetmantsd vgetmantss vhaddpd
        vhaddps vhsubpd vhsubps vinsertf128 vinsertf32x4 vinsertf32x8 vinsertf64x2 vinsertf64x4
        vinserti128 vinserti32x4 vinserti32x8 vinserti64x2 vinserti64x4 vinsertps vlddqu
        vldmxcsr vmaskmovdqu vmaskmovpd vmaskmovps vmaxpd vmaxps vmaxsd vmaxss vminpd vminps
        vminsd vminss vmovapd vmovaps vmovd vmovddup vmovdqa vmovdqa32 vmovdqa64 vmovdqu
        vmovdqu16 vmovdqu32 vmovdqu64 vmovdqu8 vmovhlps vmovhpd vmovhps vmovlhps vmovlpd vmovlps
        vmovmskpd vmovmskps vmovntdq vmovntdqa vmovntpd vmovntps vmovq vmovsd vmovshdup
        vmovsldup vmovss vmovupd vmovups vmpsadbw vmulpd vmulps vmulsd vmulss vorpd vorps
        vp4dpwssd vp4dpwssds vpabsb vpabsd vpabsq vpabsw vpackssdw vpacksswb vpackusdw vpackuswb
        vpaddb vpaddd vpaddq vpaddsb vpaddsw vpaddusb vpaddusw vpaddw vpalignr vpand vpandd
        vpandn vpandnd vpandnq vpandq vpavgb vpavgw vpblendd vpblendmb vpblendmd vpblendmq
        vpblendmw vpblendvb vpblendw vpbroadcastb vpbroadcastd vpbroadcastmb2q vpbroadcastmw2d
        vpbroadcastq vpbroadcastw vpcmp vpcmpb vpcmpd vpcmpeqb vpcmpeqd vpcmpeqq vpcmpeqw
        vpcmpestri vpcmpestrm vpcmpgtb vpcmpgtd vpcmpgtq vpcmpgtw vpcmpistri vpcmpistrm vpcmpq
        vpcmpub vpcmpud vpcmpuq vpcmpuw vpcmpw vpcompressb vpcompressd vpcompressq vpcompressw
        vpconflictd vpconflictq vpdpbusd vpdpbusds vpdpwssd vpdpwssds vperm2f128 vperm2i128
        vpermb vpermd vpermi2b vpermi2d vpermi2pd vpermi2ps vpermi2q vpermi2w vpermilpd
        vpermilps vpermpd vpermps vpermq vpermt2b vpermt2d vpermt2pd vpermt2ps vpermt2q vpermt2w
        vpermw vpexpandb vpexpandd vpexpandq vpexpandw vpextrb vpextrd vpextrq vpextrw
        vpgatherdd vpgatherdq vpgatherqd vpgatherqq vphaddd vphaddsw vphaddw vphminposuw vphsubd
        vphsubsw vphsubw vpinsrb vpinsrd vpinsrq vpinsrw vplzcntd vplzcntq vpmadd52huq
        vpmadd52luq vpmaddubsw vpmaddwd vpmaskmovd vpmaskmovq vpmaxsb vpmaxsd vpmaxsq vpmaxsw
        vpmaxub vpmaxud vpmaxuq vpmaxuw vpminsb vpminsd vpminsq vpminsw vpminub vpminud vpminuq
        vpminuw vpmovb2m vpmovd2m vpmovdb vpmovdw vpmovm2b vpmovm2d vpmovm2q vpmovm2w vpmovmskb
        vpmovq2m vpmovqb vpmovqd vpmovqw vpmovsdb vpmovsdw vpmovsqb vpmovsqd vpmovsqw vpmovswb
        vpmovsxbd vpmovsxbq vpmovsxbw vpmovsxdq vpmovsxwd vpmovsxwq vpmovusdb vpmovusdw
        vpmovusqb vpmovusqd vpmovusqw vpmovuswb vpmovw2m vpmovwb vpmovzxbd vpmovzxbq vpmovzxbw
        vpmovzxdq vpmovzxwd vpmovzxwq vpmuldq vpmulhrsw vpmulhuw vpmulhw vpmulld vpmullq vpmullw
        vpmultishiftqb vpmuludq vpopcntb vpopcntd vpopcntq vpopcntw vpor vpord vporq vprold
        vprolq vprolvd vprolvq vprord vprorq vprorvd vprorvq vpsadbw vpscatterdd vpscatterdq
        vpscatterqd vpscatterqq vpshldd vpshldq vpshldvd vpshldvq vpshldvw vpshldw vpshrdd
        vpshrdq vpshrdvd vpshrdvq vpshrdvw vpshrdw vpshufb vpshufbitqmb vpshufd vpshufhw
        vpshuflw vpsignb vpsignd vpsignw vpslld vpslldq vpsllq vpsllvd vpsllvq vpsllvw vpsllw
        vpsrad vpsraq vpsravd vpsravq vpsravw vpsraw vpsrld vpsrldq vpsrlq vpsrlvd vpsrlvq
        vpsrlvw vpsrlw vpsubb vpsubd vpsubq vpsubsb vpsubsw vpsubusb vpsubusw vpsubw vpternlogd
        vpternlogq vptest vptestmb vptestmd vptestmq vptestmw vptestnmb vptestnmd vptestnmq
        vptestnmw vpunpckhbw vpunpckhdq vpunpckhqdq vpunpckhwd vpunpcklbw vpunpckldq vpunpcklqdq
        vpunpcklwd vpxor vpxord vpxorq vrangepd vrangeps vrangesd vrangess vrcp14pd vrcp14ps
        vrcp14sd vrcp14ss vrcp28pd vrcp28ps vrcp28sd vrcp28ss vrcpps vrcpss vreducepd vreduceps
        vreducesd vreducess vrndscalepd vrndscaleps vrndscalesd vrndscaless vroundpd vroundps
        vroundsd vroundss vrsqrt14pd vrsqrt14ps vrsqrt14sd vrsqrt14ss vrsqrt28pd vrsqrt28ps
        vrsqrt28sd vrsqrt28ss vrsqrtps vrsqrtss vscalefpd vscalefps vscalefsd vscalefss
        vscatterdpd vscatterdps vscatterpf0dpd vscatterpf0dps vscatterpf0qpd vscatterpf0qps
        vscatterpf1dpd vscatterpf1dps vscatterpf1qpd vscatterpf1qps vscatterqpd vscatterqps
        vshuff32x4 vshuff64x2 vshufi32x4 vshufi64x2 vshufpd vshufps vsqrtpd vsqrtps vsqrtsd
        vsqrtss vstmxcsr vsubpd vsubps vsubsd vsubss vtestpd vtestps vucomisd vucomiss vunpckhpd
        vunpckhps vunpcklpd vunpcklps vxorpd vxorps vzeroall vzeroupper
        """
    ),
)

AVX512_OPMASK = Group(
    "avx512-opmask",
    "AVX-512 opmask-register instructions (K*)",
    _innocuous(
        "AVX-512 opmask register (k0-k7) logic, shift, test and move: user-visible state only",
        "Intel SDM Vol. 1 ch. 15 (AVX-512); Vol. 2A, KADDW ... KXORW",
    ),
    _names(
        """
        kaddb kaddd kaddq kaddw kandb kandd kandnb kandnd kandnq kandnw kandq kandw kmovb kmovd
        kmovq kmovw knotb knotd knotq knotw korb kord korq kortestb kortestd kortestq kortestw
        korw kshiftlb kshiftld kshiftlq kshiftlw kshiftrb kshiftrd kshiftrq kshiftrw ktestb
        ktestd ktestq ktestw kunpckbw kunpckdq kunpckwd kxnorb kxnord kxnorq kxnorw kxorb kxord
        kxorq kxorw
        """
    ),
)

XOP_FMA4 = Group(
    "xop-fma4",
    "AMD XOP and FMA4",
    _innocuous(
        "AMD XOP or FMA4 SIMD instruction on XMM/YMM registers: user-visible state only",
        "AMD APM Vol. 6 (128-bit and 256-bit XOP and FMA4 instructions)",
    ),
    # VPSHLD here is XOP's variable shift; the AVX-512 VBMI2 double shifts are
    # VPSHLDW/D/Q and VPSHLDV* in group avx.  VPCOMPRESS* (AVX-512) is in avx.
    _names(
        """
        vfmaddpd vfmaddps vfmaddsd vfmaddss vfmaddsubpd vfmaddsubps vfmsubaddpd vfmsubaddps
        vfmsubpd vfmsubps vfmsubsd vfmsubss vfnmaddpd vfnmaddps vfnmaddsd vfnmaddss vfnmsubpd
        vfnmsubps vfnmsubsd vfnmsubss vfrczpd vfrczps vfrczsd vfrczss vpcmov vpcom vpcomb vpcomd
        vpcomq vpcomub vpcomud vpcomuq vpcomuw vpcomw vpermil2pd vpermil2ps vphaddbd vphaddbq
        vphaddbw vphadddq vphaddubd vphaddubq vphaddubw vphaddudq vphadduwd vphadduwq vphaddwd
        vphaddwq vphsubbw vphsubdq vphsubwd vpmacsdd vpmacsdqh vpmacsdql vpmacssdd vpmacssdqh
        vpmacssdql vpmacsswd vpmacssww vpmacswd vpmacsww vpmadcsswd vpmadcswd vpperm vprotb
        vprotd vprotq vprotw vpshab vpshad vpshaq vpshaw vpshlb vpshld vpshlq vpshlw
        """
    ),
)

CRYPTO = Group(
    "crypto",
    "AES-NI and VAES, SHA, PCLMULQDQ and VPCLMULQDQ, GFNI",
    _innocuous(
        "cryptographic round, carry-less multiply or Galois-field arithmetic on vector registers",
        "Intel SDM Vol. 2A (AESDEC ... AESKEYGENASSIST, GF2P8AFFINEINVQB, GF2P8AFFINEQB,"
        " GF2P8MULB, incl. VEX/EVEX forms); Vol. 2B (PCLMULQDQ/VPCLMULQDQ, SHA1*/SHA256*)",
    ),
    _names(
        """
        aesdec aesdeclast aesenc aesenclast aesimc aeskeygenassist gf2p8affineinvqb
        gf2p8affineqb gf2p8mulb pclmulqdq sha1msg1 sha1msg2 sha1nexte sha1rnds4 sha256msg1
        sha256msg2 sha256rnds2 vaesdec vaesdeclast vaesenc vaesenclast vaesimc vaeskeygenassist
        vgf2p8affineinvqb vgf2p8affineqb vgf2p8mulb vpclmulqdq
        """
    ),
)

PADLOCK = Group(
    "padlock",
    "VIA PadLock (random-number generator, AES, SHA, Montgomery multiplier)",
    _innocuous(
        "VIA PadLock engine instruction: unprivileged, works on general registers and memory"
        " (XSTORE is a random-number source like RDRAND)",
        "VIA PadLock Programming Guide",
    ),
    _names(
        """
        montmul xcryptcbc xcryptcfb xcryptctr xcryptecb xcryptofb xsha1 xsha256 xstore
        """
    ),
)

MPX = Group(
    "mpx",
    "Intel MPX bound-register instructions",
    _innocuous(
        "MPX bounds check or bound-table access: user mode, #BR is a precise fault, and the"
        " encodings are NOPs while MPX is not enabled",
        "Intel SDM Vol. 1, Intel MPX chapter (editions that still document MPX); Vol. 2A, BNDCL,"
        " BNDCU/BNDCN, BNDLDX, BNDMK, BNDMOV, BNDSTX",
    ),
    _names(
        """
        bndcl bndcn bndcu bndldx bndmk bndmov bndstx
        """
    ),
)

PREFIX = Group(
    "prefix",
    "Prefixes that capstone gives an instruction id of their own",
    _innocuous(
        "a prefix (LOCK, REP/REPNE, operand size, REX.W, HLE hints) has no effect of its own;"
        " classify() strips printed prefixes and classifies the instruction they modify",
        "Intel SDM Vol. 2A §2.1.1 (instruction prefixes), §2.2.1 (REX prefixes)",
    ),
    _names(
        """
        data16 lock rep repne rex64 xacquire xrelease
        """
    ),
)

#: All group rules, in the order they are documented above.
GROUPS: tuple[Group, ...] = (
    NEAR_BRANCH,
    GP_INTEGER,
    STRING,
    BIT_MANIPULATION,
    CACHE_AND_ORDERING,
    X87,
    USER_STATE,
    MMX_SSE,
    SSE4A,
    AMD_3DNOW,
    AVX,
    AVX512_OPMASK,
    XOP_FMA4,
    CRYPTO,
    PADLOCK,
    MPX,
    PREFIX,
)
