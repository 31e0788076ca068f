"""ISO 4217: currency codes, their numeric codes and minor units. Pure data, no I/O.

Visma Business keeps a currency *number* on each row (`CustTr.Cur`); a company database holds a
currency register (`Cur`: `CurNo`, `ISO`) that names each number's ISO code. Where a company has
no such register, vb2po reads the number as an ISO 4217 numeric code (578 = NOK, 978 = EUR), and
a settings table (`currency.codes`) overrides both (see README, "What is not confirmed").
The table below is ISO 4217's list of active currencies (funds, precious metals and testing
codes left out: money received is never in those).
"""
from __future__ import annotations

# numeric code -> (alphabetic code, minor units)
ISO_4217: dict[int, tuple[str, int]] = {
    8: ("ALL", 2), 12: ("DZD", 2), 32: ("ARS", 2), 36: ("AUD", 2), 44: ("BSD", 2), 48: ("BHD", 3),
    50: ("BDT", 2), 51: ("AMD", 2), 52: ("BBD", 2), 60: ("BMD", 2), 64: ("BTN", 2), 68: ("BOB", 2),
    72: ("BWP", 2), 84: ("BZD", 2), 90: ("SBD", 2), 96: ("BND", 2), 104: ("MMK", 2), 108: ("BIF", 0),
    116: ("KHR", 2), 124: ("CAD", 2), 132: ("CVE", 2), 136: ("KYD", 2), 144: ("LKR", 2), 152: ("CLP", 0),
    156: ("CNY", 2), 170: ("COP", 2), 174: ("KMF", 0), 188: ("CRC", 2), 192: ("CUP", 2), 203: ("CZK", 2),
    208: ("DKK", 2), 214: ("DOP", 2), 222: ("SVC", 2), 230: ("ETB", 2), 232: ("ERN", 2), 238: ("FKP", 2),
    242: ("FJD", 2), 262: ("DJF", 0), 270: ("GMD", 2), 292: ("GIP", 2), 320: ("GTQ", 2), 324: ("GNF", 0),
    328: ("GYD", 2), 332: ("HTG", 2), 340: ("HNL", 2), 344: ("HKD", 2), 348: ("HUF", 2), 352: ("ISK", 0),
    356: ("INR", 2), 360: ("IDR", 2), 364: ("IRR", 2), 368: ("IQD", 3), 376: ("ILS", 2), 388: ("JMD", 2),
    392: ("JPY", 0), 396: ("XAD", 2), 398: ("KZT", 2), 400: ("JOD", 3), 404: ("KES", 2), 408: ("KPW", 2),
    410: ("KRW", 0), 414: ("KWD", 3), 417: ("KGS", 2), 418: ("LAK", 2), 422: ("LBP", 2), 426: ("LSL", 2),
    430: ("LRD", 2), 434: ("LYD", 3), 446: ("MOP", 2), 454: ("MWK", 2), 458: ("MYR", 2), 462: ("MVR", 2),
    480: ("MUR", 2), 484: ("MXN", 2), 496: ("MNT", 2), 498: ("MDL", 2), 504: ("MAD", 2), 512: ("OMR", 3),
    516: ("NAD", 2), 524: ("NPR", 2), 532: ("XCG", 2), 533: ("AWG", 2), 548: ("VUV", 0), 554: ("NZD", 2),
    558: ("NIO", 2), 566: ("NGN", 2), 578: ("NOK", 2), 586: ("PKR", 2), 590: ("PAB", 2), 598: ("PGK", 2),
    600: ("PYG", 0), 604: ("PEN", 2), 608: ("PHP", 2), 634: ("QAR", 2), 643: ("RUB", 2), 646: ("RWF", 0),
    654: ("SHP", 2), 682: ("SAR", 2), 690: ("SCR", 2), 702: ("SGD", 2), 704: ("VND", 0), 706: ("SOS", 2),
    710: ("ZAR", 2), 728: ("SSP", 2), 748: ("SZL", 2), 752: ("SEK", 2), 756: ("CHF", 2), 760: ("SYP", 2),
    764: ("THB", 2), 776: ("TOP", 2), 780: ("TTD", 2), 784: ("AED", 2), 788: ("TND", 3), 800: ("UGX", 0),
    807: ("MKD", 2), 818: ("EGP", 2), 826: ("GBP", 2), 834: ("TZS", 2), 840: ("USD", 2), 858: ("UYU", 2),
    860: ("UZS", 2), 882: ("WST", 2), 886: ("YER", 2), 901: ("TWD", 2), 924: ("ZWG", 2), 925: ("SLE", 2),
    926: ("VED", 2), 927: ("UYW", 4), 928: ("VES", 2), 929: ("MRU", 2), 930: ("STN", 2), 933: ("BYN", 2),
    934: ("TMT", 2), 936: ("GHS", 2), 938: ("SDG", 2), 940: ("UYI", 0), 941: ("RSD", 2), 943: ("MZN", 2),
    944: ("AZN", 2), 946: ("RON", 2), 947: ("CHE", 2), 948: ("CHW", 2), 949: ("TRY", 2), 950: ("XAF", 0),
    951: ("XCD", 2), 952: ("XOF", 0), 953: ("XPF", 0), 967: ("ZMW", 2), 968: ("SRD", 2), 969: ("MGA", 2),
    970: ("COU", 2), 971: ("AFN", 2), 972: ("TJS", 2), 973: ("AOA", 2), 976: ("CDF", 2), 977: ("BAM", 2),
    978: ("EUR", 2), 979: ("MXV", 2), 980: ("UAH", 2), 981: ("GEL", 2), 984: ("BOV", 2), 985: ("PLN", 2),
    986: ("BRL", 2), 990: ("CLF", 4), 997: ("USN", 2),
}
ALPHA: dict[str, int] = {alpha: minor for alpha, minor in ISO_4217.values()}  # alphabetic code -> minor units


def is_currency(code: object) -> bool:
    return isinstance(code, str) and code in ALPHA


def minor_units(code: str) -> int:
    """Decimals an amount in this currency may carry (2 for NOK and EUR, 0 for JPY)."""
    return ALPHA[code]
