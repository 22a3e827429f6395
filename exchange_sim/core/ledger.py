"""The ledger: the only writer of wallets, isolated margins, ledger totals and positions.

Every account's money lives in its cross wallet, in the isolated wallets of its isolated
positions and in its spot (funding) wallet (``accounts``). Nothing else in the core assigns to them: fills, fees, funding,
transfers, margin moves, clearance fees and insurance top-ups are methods here, and each one
records what it touched in ``changes`` (the account, and the position when one moved). The
margin monitor reads ``take_changes()`` before it judges anything, so a wallet move can never
be missed by forgetting to tell it: every writer is here.

Booking a fill (margin-rules.md "Quantities"): opening moves the fill's initial margin at the
position's leverage from the cross wallet into an isolated position; closing removes a pro-rata
share of the cost basis (and of the isolated wallet) and realizes side × (close notional −
removed cost) into the cross wallet. The invariants ``wallet == ledger_balance()`` and
``0 <= spot wallet == spot_ledger_balance()`` hold after every method.
"""

from __future__ import annotations

from typing import Iterable

from .accounts import Account, Position, leg_key
from .fixed import SCALE
from .margin import initial_margin
from .messages import MAIN_UMFUTURE, BalanceUpdate, FundingPayment, PositionUpdate, WalletTransfer
from .views import IncomeRecord

Change = tuple[Account, "Position | None"]


class Ledger:
    """Accounts, their positions and every move of their money."""

    def __init__(self, symbols: Iterable[str]) -> None:
        self.accounts: dict[int, Account] = {}
        # open positions per symbol (an insertion-ordered set; sort by (account, side) to iterate)
        self.positions_by_symbol: dict[str, dict[Position, None]] = {s: {} for s in symbols}
        self.next_tran_id = 0
        self.changes: list[Change] = []

    def take_changes(self) -> list[Change]:
        """What moved since the last call, in order: (account, position or None)."""
        changes, self.changes = self.changes, []
        return changes

    def add_account(self, acct: Account) -> None:
        self.accounts[acct.id] = acct

    def income(self, acct: Account, symbol: str, kind: str, amount: int, now: int, info: str = "") -> None:
        """Record an income line (REALIZED_PNL, COMMISSION, FUNDING_FEE, TRANSFER, ...)."""
        self.next_tran_id += 1
        acct.remember(acct.income, IncomeRecord(self.next_tran_id, acct.id, symbol, kind, amount, now, info))

    # ------------------------------------------------------------------ the cross wallet

    def credit(self, acct: Account, amount: int, ledger_key: str, reason: str, income: str,
               now: int) -> list[BalanceUpdate]:
        """Move ``amount`` (signed) into the cross wallet, booked under ``ledger_key``."""
        acct.cross_wallet += amount
        acct.ledger[ledger_key] += abs(amount)
        acct.update_ts = now
        self.income(acct, "", income, amount, now)
        self.changes.append((acct, None))
        return [BalanceUpdate(now, acct.id, acct.cross_wallet, amount, reason)]

    def universal_transfer(self, acct: Account, kind: str, amount: int, now: int) -> list:
        """Move ``amount`` from the spot wallet into the cross wallet (MAIN_UMFUTURE) or back.

        The futures side is a TRANSFER income line whose ``tranId`` is the transfer's; the
        ACCOUNT_UPDATE reason is the venue's DEPOSIT / WITHDRAW.
        """
        into_futures = kind == MAIN_UMFUTURE
        change = amount if into_futures else -amount
        acct.cross_wallet += change
        acct.spot_wallet -= change
        acct.ledger["from_spot" if into_futures else "to_spot"] += amount
        acct.update_ts = now
        self.income(acct, "", "TRANSFER", change, now)
        self.changes.append((acct, None))
        return [BalanceUpdate(now, acct.id, acct.cross_wallet, change, "DEPOSIT" if into_futures else "WITHDRAW"),
                WalletTransfer(now, acct.id, kind, amount, self.next_tran_id, acct.spot_wallet)]

    def sweep_spot(self, acct: Account) -> None:
        """Move the whole spot wallet back into the cross wallet (a classroom reset, no event of its own)."""
        amount = acct.spot_wallet
        if amount:
            acct.spot_wallet -= amount
            acct.cross_wallet += amount
            acct.ledger["from_spot"] += amount
            self.changes.append((acct, None))

    def charge_fee(self, acct: Account, fee: int) -> None:
        """A trading fee leaves the cross wallet."""
        acct.cross_wallet -= fee
        acct.ledger["fees"] += fee
        self.changes.append((acct, None))

    def clearance_fee(self, acct: Account, fee: int, symbol: str, now: int) -> list[BalanceUpdate]:
        """The liquidation clearance fee leaves the cross wallet (it goes to the insurance fund)."""
        acct.cross_wallet -= fee
        acct.ledger["fees"] += fee
        self.income(acct, symbol, "INSURANCE_CLEAR", -fee, now)
        self.changes.append((acct, None))
        return [BalanceUpdate(now, acct.id, acct.cross_wallet, -fee, "LIQUIDATION_FEE")]

    def insurance_top_up(self, acct: Account, amount: int, now: int) -> list[BalanceUpdate]:
        """The insurance fund pays ``amount`` into the cross wallet."""
        acct.cross_wallet += amount
        acct.ledger["insurance"] += amount
        self.changes.append((acct, None))
        return [BalanceUpdate(now, acct.id, acct.cross_wallet, amount, "INSURANCE_TOP_UP")]

    # ------------------------------------------------------------------ positions

    def open_position(self, acct: Account, symbol: str, side: str, isolated: bool, leverage: int,
                      auto_add: bool) -> Position:
        """A new, empty leg of ``acct`` (booked by ``apply_fill``)."""
        pos = Position(acct.id, symbol, side, isolated, leverage)
        pos.auto_add = auto_add
        acct.positions[leg_key(symbol, side)] = pos
        return pos

    def set_terms(self, acct: Account, pos: Position, leverage: int | None = None,
                  auto_add: bool | None = None) -> None:
        """Change a position's leverage or auto-add setting."""
        if leverage is not None:
            pos.leverage = leverage
        if auto_add is not None:
            pos.auto_add = auto_add
        self.changes.append((acct, pos))

    def move_isolated(self, acct: Account, pos: Position, change: int) -> None:
        """Move ``change`` from the cross wallet into the isolated position (negative: back)."""
        pos.isolated_wallet += change
        acct.cross_wallet -= change
        self.changes.append((acct, pos))

    def apply_fill(self, acct: Account, pos: Position, signed_qty: int, price: int, ts: int) -> int:
        """Book a fill of ``signed_qty`` at ``price`` on ``pos``; returns the realized PnL.

        Moves isolated margin between the cross wallet and the position (opening: IM of the fill
        at its leverage; closing: the pro-rata share plus the realized PnL back to the cross
        wallet). The realized PnL itself is credited here; fees are not. A position closed to
        zero leaves the account.
        """
        realized = 0
        qty = pos.qty
        if qty and (qty > 0) != (signed_qty > 0):
            close = min(abs(signed_qty), abs(qty))
            removed = pos.cost if close == abs(qty) else pos.cost * close // abs(qty)
            notional = close * price // SCALE
            realized = notional - removed if qty > 0 else removed - notional
            if pos.isolated:
                released = pos.isolated_wallet if close == abs(qty) else pos.isolated_wallet * close // abs(qty)
                pos.isolated_wallet -= released
                acct.cross_wallet += released + realized
            else:
                acct.cross_wallet += realized
            pos.cost -= removed
            qty += close if qty < 0 else -close
            signed_qty += close if signed_qty < 0 else -close
        if signed_qty:
            notional = abs(signed_qty) * price // SCALE
            pos.cost += notional
            qty += signed_qty
            if pos.isolated:
                margin = initial_margin(notional, pos.leverage)
                pos.isolated_wallet += margin
                acct.cross_wallet -= margin
        pos.qty = qty
        if qty == 0:
            pos.cost = 0
            if pos.isolated and pos.isolated_wallet:
                acct.cross_wallet += pos.isolated_wallet
                pos.isolated_wallet = 0
        pos.update_ts = ts
        acct.ledger["realized_pnl"] += realized
        by_symbol = self.positions_by_symbol[pos.symbol]
        if qty:
            by_symbol[pos] = None
        else:
            by_symbol.pop(pos, None)
            key = (pos.symbol, pos.side)
            if acct.positions.get(key) is pos:
                del acct.positions[key]
        self.changes.append((acct, pos))
        return realized

    def settle_funding(self, acct: Account, pos: Position, rate: int, mark: int, amount: int,
                       now: int) -> list:
        """Pay (negative) or receive ``amount`` of funding on ``pos`` at ``rate`` and ``mark``."""
        if pos.isolated:
            pos.isolated_wallet += amount
        else:
            acct.cross_wallet += amount
        acct.ledger["funding"] += amount
        self.income(acct, pos.symbol, "FUNDING_FEE", amount, now)
        self.changes.append((acct, pos))
        events: list = [FundingPayment(now, acct.id, pos.symbol, pos.side, rate, mark, amount)]
        if pos.isolated:
            events.append(PositionUpdate(now, acct.id, pos.symbol, pos.side, pos.qty, pos.entry_price, True,
                                         pos.isolated_wallet, pos.leverage, "FUNDING_FEE"))
        else:
            events.append(BalanceUpdate(now, acct.id, acct.cross_wallet, amount, "FUNDING_FEE"))
        return events

    def wallet_invariant_holds(self) -> bool:
        """Every account's wallet equals its ledger (deposits, transfers, PnL, funding, fees, top-ups,
        spot transfers) and its spot wallet, never negative, equals its spot ledger."""
        return all(a.wallet_balance == a.ledger_balance() and 0 <= a.spot_wallet == a.spot_ledger_balance()
                   for a in self.accounts.values())
