"""The currency a campaign's costs are said in (`currency = "USD"`): ISO 4217 codes in use.

    >>> money(12.5, "USD"), money(12.5, None)
    ('12.50 USD', '12.50')

Tabbly's logs give a call's cost as a bare number; the campaign file names its currency so the
page can say it. Without `currency` the page shows the number alone, never a guessed unit.
"""

from __future__ import annotations

# ISO 4217 codes of currencies in circulation (funds, metals and test codes left out).
CURRENCIES = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN
    BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD
    FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY
    KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP
    MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR
    RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS
    TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XCG XOF XPF
    YER ZAR ZMW ZWG ZWL
    """.split()  # noqa: SIM905 (a table reads better than 170 quoted strings)
)


def money(amount: float, currency: str | None) -> str:
    """An amount as the page shows it: two decimals, then the currency code if there is one."""
    return f"{amount:,.2f} {currency}" if currency else f"{amount:,.2f}"
