"""ANSI X12 text for the traditional-invoicing personality: the 810 (invoice) the seller sends
and the 820 (remittance advice) the buyer's payment comes with. Pure functions, no I/O.

Why written here rather than taken from PyPI: the candidates are either unmaintained (`badx12`,
last release 2018), a full translator with its own data maps and runtime (`bots`, `pyx12`), or
a months-old 0.x (`ansi-x12`). What the simulator needs is small and exact: the envelope
(ISA/GS/ST ... SE/GE/IEA, separators taken from the ISA segment), a dozen segments, strict
errors that name the segment, and a renderer that is the parser's inverse (`parse(render(d))
== d`, checked by property tests).

Money in X12 is decimal text (`R`/`N2` elements); here it is integer minor units, converted
exactly (no floats), with the currency's exponent. `TDS01` is the invoice total in minor units
with two implied decimals (`N2`), which for a 2-decimal currency is the minor units themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from simulator.domain.errors import SandbankError, ValidationFailed
from simulator.domain.money import CURRENCIES

ELEMENT, SEGMENT, COMPONENT = "*", "~", ">"
MAX_SEGMENTS = 2_000  # a document bigger than this is refused, not parsed
_NUMBER = re.compile(r"^(-?)(\d{1,15})(?:\.(\d{1,6}))?$")
_SAFE = re.compile(r"^[^*~>\r\n]*$")  # what an element may hold (no separators)


class MalformedX12(SandbankError):
    """The X12 text cannot be read (envelope, separators, counts), naming the segment. A 422,
    not a 400: the body is the text the contract allows (any string); it is its content, as
    X12, that cannot be processed."""

    code, status, title = "malformed_x12", 422, "Malformed X12 document"


class InvalidDocument(ValidationFailed):
    """A readable document (X12 or its JSON shape) whose content is wrong: a business rule of
    EDI (the lines add up to the total; the segments an 810 needs), 422 naming the segment."""

    code, title = "invalid_document", "Invalid EDI document"


def invalid(segment: str, message: str) -> InvalidDocument:
    """A readable document whose content is wrong: 422 naming the segment (and element)."""
    return InvalidDocument(
        [{"path": f"x12.{segment}", "message": message, "type": "x12"}],
        f"{segment}: {message}",
    )


# --- amounts ----------------------------------------------------------------------------------
def decimal_to_minor(text: str, currency: str, segment: str) -> int:
    """'1234.5' USD -> 123450; exact, refusing more decimals than the currency has."""
    m = _NUMBER.match(text)
    if m is None:
        raise invalid(segment, f"{text!r} is not a decimal amount")
    sign, whole, frac = m.group(1), m.group(2), m.group(3) or ""
    exp = CURRENCIES.get(currency, 2)
    if len(frac) > exp:
        raise invalid(segment, f"{text!r} has more than {exp} decimals for {currency}")
    value = int(whole + frac.ljust(exp, "0"))
    return -value if sign else value


def minor_to_decimal(amount: int, currency: str) -> str:
    exp = CURRENCIES.get(currency, 2)
    sign = "-" if amount < 0 else ""
    major, minor = divmod(abs(amount), 10**exp)
    return f"{sign}{major}.{minor:0{exp}d}" if exp else f"{sign}{major}"


def _integer(text: str, segment: str, *, lo: int = 0, hi: int = 10**15) -> int:
    if not text.isdigit() or not lo <= int(text) <= hi:
        raise invalid(segment, f"{text!r} is not a whole number between {lo} and {hi}")
    return int(text)


def _date(text: str, segment: str) -> date:
    if len(text) != 8 or not text.isdigit():
        raise invalid(segment, f"{text!r} is not a date CCYYMMDD")
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise invalid(segment, f"{text!r} is not a date CCYYMMDD") from None


def _text(value: str, segment: str) -> str:
    if not _SAFE.match(value):
        raise invalid(segment, "an element may not contain *, ~, > or a line break")
    return value


# --- the envelope -----------------------------------------------------------------------------
def segments(text: str) -> list[list[str]]:
    """The transaction set's segments (ST .. SE), each a list of elements (id first).

    With an ISA header the separators are its own (element: 4th character, component: the
    105th, segment: the 106th) and ISA/GS/GE/IEA must frame exactly one ST .. SE; without one,
    `*` and `~` and a bare ST .. SE. SE01 must count the segments from ST to SE."""
    parsed = _split(text.strip())
    for seg in parsed:
        if not re.fullmatch(r"[A-Z][A-Z0-9]{1,2}", seg[0]):
            raise MalformedX12(f"segment {seg[0][:10]!r}: not a segment id (is a separator wrong?)")
    if parsed[0][0] == "ISA":
        _check_envelope(parsed)
        parsed = parsed[2:-2]
    if not parsed or parsed[0][0] != "ST" or parsed[-1][0] != "SE":
        raise MalformedX12("ST: the transaction set must start with ST and end with SE")
    st, se = parsed[0], parsed[-1]
    if len(st) < 3 or len(se) < 3:
        raise MalformedX12("ST/SE: a control number is missing")
    if se[2] != st[2]:
        raise MalformedX12(f"SE: control number {se[2]!r} does not match ST's {st[2]!r}")
    if se[1] != str(len(parsed)):
        raise MalformedX12(f"SE: counts {se[1]!r} segments, the set has {len(parsed)}")
    if sum(s[0] in ("ST", "SE") for s in parsed) != 2:
        raise MalformedX12("ST: exactly one transaction set per document")
    return parsed


def _split(text: str) -> list[list[str]]:
    element, terminator = ELEMENT, SEGMENT
    if text.startswith("ISA"):
        if len(text) < 106:
            raise MalformedX12("ISA: the interchange header must be 106 characters")
        element, terminator = text[3], text[105]
        if element.isalnum() or terminator.isalnum() or element == terminator:
            raise MalformedX12("ISA: separators must be distinct punctuation")
    raw = [s.strip("\r\n") for s in text.split(terminator)]
    if raw and raw[-1] == "":
        raw.pop()
    if not raw:
        raise MalformedX12("the document is empty")
    if len(raw) > MAX_SEGMENTS:
        raise MalformedX12(f"more than {MAX_SEGMENTS} segments")
    return [s.split(element) for s in raw]


def _check_envelope(parsed: list[list[str]]) -> None:
    if len(parsed) < 6:
        raise MalformedX12("ISA: an interchange needs ISA, GS, ST .. SE, GE and IEA")
    isa, gs, ge, iea = parsed[0], parsed[1], parsed[-2], parsed[-1]
    if len(isa) != 17:
        raise MalformedX12(f"ISA: 16 elements expected, got {len(isa) - 1}")
    if gs[0] != "GS" or len(gs) < 7:
        raise MalformedX12("GS: the functional group header must follow ISA")
    if ge[0] != "GE" or len(ge) < 3 or ge[2] != gs[6]:
        raise MalformedX12("GE: must close the group with GS's control number")
    if iea[0] != "IEA" or len(iea) < 3 or iea[2] != isa[13]:
        raise MalformedX12("IEA: must close the interchange with ISA's control number")


def envelope(body: list[str], kind: str, control: int, day: date) -> str:
    """`body` (segment strings, ST .. SE) in an ISA/GS envelope with the standard separators."""
    ymd = day.strftime("%y%m%d")
    number = f"{control:09d}"
    isa = ELEMENT.join(
        [
            "ISA",
            "00",
            " " * 10,
            "00",
            " " * 10,
            "ZZ",
            "SANDBANK".ljust(15),
            "ZZ",
            "PARTNER".ljust(15),
            ymd,
            "0000",
            "U",
            "00401",
            number,
            "0",
            "T",
            COMPONENT,
        ]
    )
    gs = f"GS*{kind}*SANDBANK*PARTNER*{day.strftime('%Y%m%d')}*0000*{control}*X*004010"
    lines = [isa, gs, *body, f"GE*1*{control}", f"IEA*1*{number}"]
    return "".join(line + SEGMENT + "\n" for line in lines)


def _set(kind: str, inner: list[str]) -> list[str]:
    return [f"ST*{kind}*0001", *inner, f"SE*{len(inner) + 2}*0001"]


def _el(seg: list[str], n: int) -> str:
    return seg[n] if len(seg) > n else ""


def _join(*elements: str) -> str:
    out = list(elements)
    while out and out[-1] == "":
        out.pop()
    return ELEMENT.join(out)


# --- 810: the invoice -------------------------------------------------------------------------
@dataclass(frozen=True)
class Line810:
    """IT1: one invoice line (quantity x unit price; the price in minor units here)."""

    quantity: int
    unit_price: int
    unit: str = "EA"
    product_id: str | None = None  # IT106 VP (vendor part number)


@dataclass(frozen=True)
class Invoice810:
    invoice_number: str  # BIG02
    invoice_date: date  # BIG01
    po_number: str | None  # BIG04
    currency: str  # CUR02
    buyer_name: str  # N1*BY 02
    buyer_id: str | None  # N1*BY 04 (qualifier 92: assigned by the buyer)
    buyer_email: str  # PER*AP .. EM
    net_days: int  # ITD07
    lines: tuple[Line810, ...]
    total: int  # TDS01, minor units

    def render(self, control: int = 1) -> str:
        return envelope(_set("810", self._body()), "IN", control, self.invoice_date)

    def _body(self) -> list[str]:
        c = self.currency
        out = [
            _join(
                "BIG",
                self.invoice_date.strftime("%Y%m%d"),
                self.invoice_number,
                "",
                self.po_number or "",
            ),
            _join("CUR", "SE", c),
        ]
        if self.buyer_name:  # else the buyer is the PO's on file
            out += [
                _join(
                    "N1", "BY", self.buyer_name, "92" if self.buyer_id else "", self.buyer_id or ""
                ),
                _join("PER", "AP", "", "EM", self.buyer_email),
            ]
        out += [
            _join("ITD", "05", "3", "", "", "", "", str(self.net_days)),
        ]
        for n, line in enumerate(self.lines, 1):
            out.append(
                _join(
                    "IT1",
                    str(n),
                    str(line.quantity),
                    line.unit,
                    minor_to_decimal(line.unit_price, c),
                    "",
                    "VP" if line.product_id else "",
                    line.product_id or "",
                )
            )
        out += [_join("TDS", str(self.total)), _join("CTT", str(len(self.lines)))]
        return out


def parse_810(text: str) -> Invoice810:
    """An 810 transaction set -> `Invoice810`; 400 unreadable, 422 naming the wrong segment."""
    segs = segments(text)
    if segs[0][1] != "810":
        raise invalid("ST", f"transaction set {segs[0][1]!r} is not an 810 invoice")
    by_id: dict[str, list[list[str]]] = {}
    for seg in segs[1:-1]:
        by_id.setdefault(seg[0], []).append(seg)
    known = {"BIG", "CUR", "N1", "PER", "ITD", "IT1", "TDS", "CTT", "REF", "DTM"}
    for seg_id in by_id:
        if seg_id not in known:
            raise invalid(seg_id, "a segment this 810 does not take")
    big = _one(by_id, "BIG")
    number = _text(_el(big, 2), "BIG02")
    if not number:
        raise invalid("BIG02", "the invoice number is required")
    currency = _el(_one(by_id, "CUR"), 2) if "CUR" in by_id else "USD"
    if currency not in CURRENCIES:
        raise invalid("CUR02", f"{currency!r} is not an ISO 4217 currency code")
    buyer = [s for s in by_id.get("N1", []) if _el(s, 1) == "BY"]
    if by_id.get("N1") and (len(buyer) != 1 or not _el(buyer[0], 2)):
        raise invalid("N1", "exactly one N1*BY (the buyer, with a name) is required")
    per = _one(by_id, "PER") if buyer else ["PER", "AP", "", "EM", ""]
    if buyer and (_el(per, 3) != "EM" or "@" not in _el(per, 4)):
        raise invalid("PER", "PER*AP**EM*<email> (the buyer's accounts payable) is required")
    itd = _one(by_id, "ITD")
    net_days = _integer(_el(itd, 7) or "30", "ITD07", hi=365)
    lines = []
    for seg in by_id.get("IT1", []):
        lines.append(
            Line810(
                quantity=_integer(_el(seg, 2), "IT102", lo=1, hi=1_000_000),
                unit=_text(_el(seg, 3) or "EA", "IT103"),
                unit_price=decimal_to_minor(_el(seg, 4), currency, "IT104"),
                product_id=_text(_el(seg, 7), "IT107") or None,
            )
        )
    if not lines:
        raise invalid("IT1", "an invoice needs at least one IT1 line")
    total = _integer(_el(_one(by_id, "TDS"), 1), "TDS01")
    if "CTT" in by_id and _el(by_id["CTT"][0], 1) != str(len(lines)):
        raise invalid("CTT01", f"counts {_el(by_id['CTT'][0], 1)!r} lines, there are {len(lines)}")
    buyer_id = (_el(buyer[0], 4) or None) if buyer else None
    return Invoice810(
        invoice_number=number,
        invoice_date=_date(_el(big, 1), "BIG01"),
        po_number=_text(_el(big, 4), "BIG04") or None,
        currency=currency,
        buyer_name=_text(_el(buyer[0], 2), "N102") if buyer else "",
        buyer_id=_text(buyer_id, "N104") if buyer_id else None,
        buyer_email=_text(_el(per, 4), "PER04"),
        net_days=net_days,
        lines=tuple(lines),
        total=total,
    )


def _one(by_id: dict[str, list[list[str]]], seg_id: str) -> list[str]:
    found = by_id.get(seg_id, [])
    if len(found) != 1:
        raise invalid(seg_id, f"exactly one {seg_id} segment is required, found {len(found)}")
    return found[0]


# --- 820: the remittance advice ---------------------------------------------------------------
@dataclass(frozen=True)
class Rmr820:
    """RMR (+ADX): what one payment line refers to and pays."""

    qualifier: str  # RMR01: IV (invoice number), PO (purchase order number)
    reference: str  # RMR02: as the buyer typed it ('' when missing)
    paid: int  # RMR04, minor units
    invoice_amount: int | None = None  # RMR05
    adjustment: int = 0  # ADX01 (negative: a deduction)
    adjustment_reason: str | None = None  # ADX02


@dataclass(frozen=True)
class Remittance820:
    trace: str  # TRN02: the payment's trace (check or ACH trace) number
    method: str  # BPR04: ACH or CHK
    paid_on: date  # BPR16
    currency: str
    total: int  # BPR02, minor units
    payer: str  # N1*PR 02
    lines: tuple[Rmr820, ...] = field(default_factory=tuple)

    def render(self, control: int = 1) -> str:
        c = self.currency
        body = [
            _join(
                "BPR",
                "C",
                minor_to_decimal(self.total, c),
                "C",
                self.method,
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                self.paid_on.strftime("%Y%m%d"),
            ),
            _join("TRN", "1", self.trace),
            _join("CUR", "PR", c),
            _join("N1", "PR", self.payer),
            _join("ENT", "1"),
        ]
        for line in self.lines:
            body.append(
                _join(
                    "RMR",
                    line.qualifier,
                    line.reference,
                    "",
                    minor_to_decimal(line.paid, c),
                    "" if line.invoice_amount is None else minor_to_decimal(line.invoice_amount, c),
                )
            )
            if line.adjustment or line.adjustment_reason:
                body.append(
                    _join("ADX", minor_to_decimal(line.adjustment, c), line.adjustment_reason or "")
                )
        return envelope(_set("820", body), "RA", control, self.paid_on)


def parse_820(text: str) -> Remittance820:
    segs = segments(text)
    if segs[0][1] != "820":
        raise invalid("ST", f"transaction set {segs[0][1]!r} is not an 820 remittance")
    bpr = segs[1] if len(segs) > 1 and segs[1][0] == "BPR" else None
    if bpr is None:
        raise invalid("BPR", "BPR must follow ST")
    currency, trace, payer = "USD", "", ""
    lines: list[Rmr820] = []
    for seg in segs[2:-1]:
        if seg[0] == "CUR":
            currency = _el(seg, 2)
            if currency not in CURRENCIES:
                raise invalid("CUR02", f"{currency!r} is not an ISO 4217 currency code")
        elif seg[0] == "TRN":
            trace = _el(seg, 2)
        elif seg[0] == "N1" and _el(seg, 1) == "PR":
            payer = _el(seg, 2)
        elif seg[0] == "RMR":
            lines.append(_rmr(seg, currency))
        elif seg[0] == "ADX":
            if not lines:
                raise invalid("ADX", "an adjustment must follow its RMR")
            lines[-1] = _adx(lines[-1], seg, currency)
        elif seg[0] not in ("ENT", "N1", "REF", "DTM"):
            raise invalid(seg[0], "a segment this 820 does not take")
    if not trace:
        raise invalid("TRN", "the trace number (TRN02) is required")
    return Remittance820(
        trace=trace,
        method=_el(bpr, 4),
        paid_on=_date(_el(bpr, 16), "BPR16"),
        currency=currency,
        total=decimal_to_minor(_el(bpr, 2), currency, "BPR02"),
        payer=payer,
        lines=tuple(lines),
    )


def _rmr(seg: list[str], currency: str) -> Rmr820:
    qualifier = _el(seg, 1)
    if qualifier not in ("IV", "PO"):
        raise invalid("RMR01", f"{qualifier!r}: IV or PO expected")
    invoiced = _el(seg, 5)
    return Rmr820(
        qualifier=qualifier,
        reference=_el(seg, 2),
        paid=decimal_to_minor(_el(seg, 4), currency, "RMR04"),
        invoice_amount=decimal_to_minor(invoiced, currency, "RMR05") if invoiced else None,
    )


def _adx(last: Rmr820, seg: list[str], currency: str) -> Rmr820:
    adjustment = decimal_to_minor(_el(seg, 1), currency, "ADX01")
    return Rmr820(
        last.qualifier,
        last.reference,
        last.paid,
        last.invoice_amount,
        adjustment,
        _el(seg, 2) or None,
    )
