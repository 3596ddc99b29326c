"""SipHash against published vectors, and the hash helpers of the hashing schedulers."""

from __future__ import annotations

import pytest

from pylvs.core.schedulers.hashing import addr_fold, hash_32
from pylvs.core.schedulers.siphash import hsiphash, hsiphash_u32, siphash, siphash24
from pylvs.core.service import AF_INET, AF_INET6

# Key 00 01 .. 0f, message 00 01 .. (n-1): the vectors of the SipHash reference implementation
# (github.com/veorq/SipHash, vectors.h) as the kernel's lib/siphash_kunit.c lists them.
K0 = 0x0706050403020100
K1 = 0x0F0E0D0C0B0A0908

SIPHASH24 = [
    0x726FDB47DD0E0E31, 0x74F839C593DC67FD, 0x0D6C8009D9A94F5A, 0x85676696D7FB7E2D,
    0xCF2794E0277187B7, 0x18765564CD99A68D, 0xCBC9466E58FEE3CE, 0xAB0200F58B01D137,
    0x93F5F5799A932462, 0x9E0082DF0BA9E4B0, 0x7A5DBBC594DDB9F3, 0xF4B32F46226BADA7,
    0x751E8FBC860EE5FB, 0x14EA5627C0843D90, 0xF723CA908E7AF2EE, 0xA129CA6149BE45E5,
    0x3F2ACC7F57C29BDB, 0x699AE9F52CBE4794, 0x4BC1B3F0968DD39C, 0xBB6DC91DA77961BD,
    0xBED65CF21AA2EE98, 0xD0F2CBB02E3B67C7, 0x93536795E3A33E88, 0xA80C038CCD5CCEC8,
    0xB8AD50C6F649AF94, 0xBCE192DE8A85B8EA, 0x17D835B85BBB15F3, 0x2F2E6163076BCFAD,
    0xDE4DAAACA71DC9A5, 0xA6A2506687956571, 0xAD87A3535C49EF28, 0x32D892FAD841C342,
    0x7127512F72F27CCE, 0xA7F32346F95978E3, 0x12E0B01ABB051238, 0x15E034D40FA197AE,
    0x314DFFBE0815A3B4, 0x027990F029623981, 0xCADCD4E59EF40C4D, 0x9ABFD8766A33735C,
    0x0E3EA96B5304A7D0, 0xAD0C42D6FC585992, 0x187306C89BC215A9, 0xD4A60ABCF3792B95,
    0xF935451DE4F21DF2, 0xA9538F0419755787, 0xDB9ACDDFF56CA510, 0xD06C98CD5C0975EB,
    0xE612A3CB9ECBA951, 0xC766E62CFCADAF96, 0xEE64435A9752FE72, 0xA192D576B245165A,
    0x0A8787BF8ECB74B2, 0x81B3E73D20B49B6F, 0x7FA8220BA3B2ECEA, 0x245731C13CA42499,
    0xB78DBFAF3A8D83BD, 0xEA1AD565322A1A0B, 0x60E61C23A3795013, 0x6606D7E446282B93,
    0x6CA4ECB15C5F91E1, 0x9F626DA15C9625F3, 0xE51B38608EF25F57, 0x958A324CEB064572,
]  # fmt: skip

# The kernel's 64-bit hsiphash (SipHash-1-3, u32 result), same key and messages.
HSIPHASH64 = [
    0x050FC4DC, 0x7D57CA93, 0x4DC7D44D, 0xE7DDF7FB, 0x88D38328, 0x49533B67, 0xC59F22A7,
    0x9BB11140, 0x8D299A8E, 0x6C063DE4, 0x92FF097F, 0xF94DC352, 0x57B4D9A2, 0x1229FFA7,
    0xC0F95D34, 0x2A519956, 0x7D908B66, 0x63DBD80C, 0xB473E63E, 0x8D297D1C, 0xA6CCE040,
    0x2B45F844, 0xA320872E, 0xDAE6C123, 0x67349C8C, 0x705B0979, 0xCA9913A5, 0x4ADE3B35,
    0xEF6CD00D, 0x4AB1E1F4, 0x43C5E663, 0x8C21D1BC, 0x16A7B60D, 0x7A8FF9BF, 0x1F2A753E,
    0xBF186B91, 0xADA26206, 0xA3C33057, 0xAE3A36A1, 0x7B108392, 0x99E41531, 0x3F1AD944,
    0xC8138825, 0xC28949A6, 0xFAF8876B, 0x9F042196, 0x68B1D623, 0x8B5114FD, 0xDF074C46,
    0x12CC86B3, 0x0A52098F, 0x9D292F9A, 0xA2F41F12, 0x43A71ED0, 0x73F0BCE6, 0x70A7E980,
    0x243C6D75, 0xFDB71513, 0xA67D8A08, 0xB7E8F148, 0xF7A644EE, 0x0F1837F2, 0x4B6694E0,
    0xB7BBB3A8,
]  # fmt: skip


def test_siphash24_paper_vector() -> None:
    # Appendix A of the SipHash paper: 15-byte message 00..0e.
    assert siphash24(K0, K1, bytes(range(15))) == 0xA129CA6149BE45E5


@pytest.mark.parametrize("n", range(64))
def test_siphash24_reference_vectors(n: int) -> None:
    assert siphash(K0, K1, bytes(range(n)), 2, 4) == SIPHASH24[n]


@pytest.mark.parametrize("n", range(64))
def test_hsiphash_kernel_vectors(n: int) -> None:
    assert hsiphash(K0, K1, bytes(range(n))) == HSIPHASH64[n]


def test_hsiphash_u32_matches_generic() -> None:
    # hsiphash_1u32(0x03020100) is vector 4 in the kernel self-test.
    assert hsiphash_u32(K0, K1, 0x03020100) == HSIPHASH64[4]
    for v in (0, 1, 0xDEADBEEF, 0xFFFFFFFF, 2654435761):
        assert hsiphash_u32(1, 2, v) == hsiphash(1, 2, v.to_bytes(4, "little"))
    # Values wrap to a u32 like the kernel's ``unsigned int v``.
    assert hsiphash_u32(1, 2, 0x1_0000_0005) == hsiphash_u32(1, 2, 5)


def test_hash_32() -> None:
    assert hash_32(1, 8) == 0x61  # top byte of GOLDEN_RATIO_32
    # 0x0A000001 * 0x61C88647 = 0x27C88647 (mod 2**32)
    assert hash_32(0x0A000001, 8) == 0x27
    assert hash_32(0x0A000001, 10) == 0x27C88647 >> 22
    assert hash_32(0, 8) == 0


def test_addr_fold() -> None:
    assert addr_fold(AF_INET, 0x0A000001) == 0x0A000001
    # 2001:db8::1 -> 0x20010db8 ^ 0 ^ 0 ^ 1
    assert addr_fold(AF_INET6, 0x20010DB8 << 96 | 1) == 0x20010DB9
    # An IPv6 address read as IPv4 gives its first word (addr->ip of union nf_inet_addr).
    assert addr_fold(AF_INET, 0x20010DB8 << 96 | 1) == 0x20010DB8
