"""Money as integer minor units plus an ISO 4217 currency. No floats anywhere."""

from __future__ import annotations

from dataclasses import dataclass

from simulator.domain.errors import CurrencyMismatch, InvalidAmount, UnknownCurrency

# ISO 4217 active codes. Exponent 2 unless listed in _EXPONENT below.
_CODES = [
    "AED",
    "AFN",
    "ALL",
    "AMD",
    "ANG",
    "AOA",
    "ARS",
    "AUD",
    "AWG",
    "AZN",
    "BAM",
    "BBD",
    "BDT",
    "BGN",
    "BHD",
    "BIF",
    "BMD",
    "BND",
    "BOB",
    "BRL",
    "BSD",
    "BTN",
    "BWP",
    "BYN",
    "BZD",
    "CAD",
    "CDF",
    "CHF",
    "CLP",
    "CNY",
    "COP",
    "CRC",
    "CUP",
    "CVE",
    "CZK",
    "DJF",
    "DKK",
    "DOP",
    "DZD",
    "EGP",
    "ERN",
    "ETB",
    "EUR",
    "FJD",
    "FKP",
    "GBP",
    "GEL",
    "GHS",
    "GIP",
    "GMD",
    "GNF",
    "GTQ",
    "GYD",
    "HKD",
    "HNL",
    "HTG",
    "HUF",
    "IDR",
    "ILS",
    "INR",
    "IQD",
    "IRR",
    "ISK",
    "JMD",
    "JOD",
    "JPY",
    "KES",
    "KGS",
    "KHR",
    "KMF",
    "KPW",
    "KRW",
    "KWD",
    "KYD",
    "KZT",
    "LAK",
    "LBP",
    "LKR",
    "LRD",
    "LSL",
    "LYD",
    "MAD",
    "MDL",
    "MGA",
    "MKD",
    "MMK",
    "MNT",
    "MOP",
    "MRU",
    "MUR",
    "MVR",
    "MWK",
    "MXN",
    "MYR",
    "MZN",
    "NAD",
    "NGN",
    "NIO",
    "NOK",
    "NPR",
    "NZD",
    "OMR",
    "PAB",
    "PEN",
    "PGK",
    "PHP",
    "PKR",
    "PLN",
    "PYG",
    "QAR",
    "RON",
    "RSD",
    "RUB",
    "RWF",
    "SAR",
    "SBD",
    "SCR",
    "SDG",
    "SEK",
    "SGD",
    "SHP",
    "SLE",
    "SOS",
    "SRD",
    "SSP",
    "STN",
    "SVC",
    "SYP",
    "SZL",
    "THB",
    "TJS",
    "TMT",
    "TND",
    "TOP",
    "TRY",
    "TTD",
    "TWD",
    "TZS",
    "UAH",
    "UGX",
    "USD",
    "UYU",
    "UZS",
    "VES",
    "VND",
    "VUV",
    "WST",
    "XAF",
    "XCD",
    "XOF",
    "XPF",
    "YER",
    "ZAR",
    "ZMW",
    "ZWG",
]
_EXPONENT = {
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
}
CURRENCIES: dict[str, int] = {code: _EXPONENT.get(code, 2) for code in _CODES}
DEFAULT_CURRENCY = "USD"
# The largest amount any single object may carry: 10^13 minor units (100 billion dollars).
MAX_AMOUNT = 10**13


def check_currency(code: str) -> str:
    """Return the ISO code if known, else raise UnknownCurrency."""
    if code not in CURRENCIES:
        raise UnknownCurrency(code)
    return code


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in minor units of one currency. Arithmetic refuses to mix currencies."""

    amount: int
    currency: str = DEFAULT_CURRENCY

    def __post_init__(self) -> None:
        if type(self.amount) is not int:  # bool and float are refused on purpose
            raise InvalidAmount("amounts are integers in minor units")
        check_currency(self.currency)

    @classmethod
    def zero(cls, currency: str = DEFAULT_CURRENCY) -> Money:
        return cls(0, currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(self.currency, other.currency)

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        self._same(other)
        return self.amount >= other.amount

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def is_positive(self) -> bool:
        return self.amount > 0

    def format(self) -> str:
        """Human form for pages and logs, e.g. '1,250.00 USD' (never parsed back)."""
        exp = CURRENCIES[self.currency]
        sign = "-" if self.amount < 0 else ""
        major, minor = divmod(abs(self.amount), 10**exp)
        frac = f".{minor:0{exp}d}" if exp else ""
        return f"{sign}{major:,}{frac} {self.currency}"

    def allocate(self, parts: int) -> list[Money]:
        """Split into `parts` amounts that differ by at most one minor unit and sum exactly."""
        if parts <= 0:
            raise InvalidAmount("cannot split into zero parts")
        base, extra = divmod(self.amount, parts)
        return [Money(base + (1 if i < extra else 0), self.currency) for i in range(parts)]
