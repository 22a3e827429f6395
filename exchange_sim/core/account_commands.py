"""Account commands: accounts and sub-accounts, wallets, margin type, position mode, leverage,
isolated margin. Each either changes state and returns its events, or returns the venue's
refusal (code and message) and changes nothing (margin-rules.md "Mode rules").

The registry of accounts (ids, API keys, the deposit a classroom reset returns to) is owned
here; money moves through the ledger, closing positions on reset through it too.
"""

from __future__ import annotations

from typing import Any, Mapping

from .accounts import Account, leg_key
from .exchange_config import ExchangeConfig
from .fixed import fmt_trim
from .instruments import Instrument
from .ledger import Ledger
from .margin import initial_margin
from .messages import (
    BOTH, LONG, SHORT, AccountCreated, AdjustIsolatedMargin, BalanceUpdate, CommandRejected, CreateAccount,
    Deposit, PositionUpdate, ResetAccount, SetAutoAddMargin, SetLeverage, SetMarginType, SetPositionMode,
    UNIVERSAL_TRANSFER_KINDS, SettingChanged, Transfer, UniversalTransfer, Withdraw,
)
from .order_manager import OrderManager
from .orders import ERR, rejected
from .risk_view import RiskView

ERR_UNKNOWN_ACCOUNT = -1102
ERR_AMOUNT = (-1102, "Mandatory parameter 'amount' was not sent, was empty/null, or malformed.")
ERR_BALANCE = (-2018, "Balance is insufficient.")
ERR_TRANSFER_TYPE = (-1130, "Data sent for parameter 'type' is not valid.")
ERR_WALLET_BALANCE = (-5002, "You have insufficient balance.")  # the venue's wallet (sapi) code


def _unknown(cmd: Any, aid: int) -> list:
    return [rejected(cmd, (ERR_UNKNOWN_ACCOUNT, f"Unknown account {aid}."))]


class AccountCommands:
    def __init__(self, instruments: Mapping[str, Instrument], config: ExchangeConfig, ledger: Ledger,
                 orders: OrderManager, view: RiskView) -> None:
        self.instruments = instruments
        self.config = config
        self.ledger = ledger
        self.orders = orders
        self.view = view
        self.accounts_by_key: dict[str, int] = {}
        self.initial_deposit: dict[int, int] = {}
        self.next_account_id = 0

    def refusal(self, cmd: Any) -> CommandRejected | None:
        """The refusal of a command naming an unknown account or symbol (None: both known)."""
        if cmd.account not in self.ledger.accounts:
            return _unknown(cmd, cmd.account)[0]
        if cmd.symbol not in self.instruments:
            return rejected(cmd, ERR["symbol"])
        return None

    def create_account(self, cmd: CreateAccount, now: int) -> list:
        accounts = self.ledger.accounts
        if cmd.parent is not None and cmd.parent not in accounts:
            return [rejected(cmd, (ERR_UNKNOWN_ACCOUNT, f"Unknown parent account {cmd.parent}."))]
        if cmd.deposit < 0:
            return [rejected(cmd, ERR_AMOUNT)]
        if cmd.api_key and cmd.api_key in self.accounts_by_key:
            return [rejected(cmd, (-1102, "API key already in use."))]
        self.next_account_id += 1
        aid = self.next_account_id
        acct = Account(aid, cmd.name, cmd.parent, cmd.api_key, cmd.api_secret, cmd.ts, self.config.history_limit)
        self.ledger.add_account(acct)
        if cmd.api_key:
            self.accounts_by_key[cmd.api_key] = aid
        if cmd.parent is not None:
            accounts[cmd.parent].children.append(aid)
        self.initial_deposit[aid] = cmd.deposit
        out: list = [AccountCreated(cmd.ts, aid, cmd.name, cmd.parent)]
        if cmd.deposit:
            out += self.ledger.credit(acct, cmd.deposit, "deposits", "DEPOSIT", "TRANSFER", now)
        return out

    def deposit(self, cmd: Deposit, now: int) -> list:
        acct = self.ledger.accounts.get(cmd.account)
        if acct is None:
            return _unknown(cmd, cmd.account)
        if cmd.amount <= 0:
            return [rejected(cmd, ERR_AMOUNT)]
        return self.ledger.credit(acct, cmd.amount, "deposits", "DEPOSIT", "TRANSFER", now)

    def withdraw(self, cmd: Withdraw, now: int) -> list:
        acct = self.ledger.accounts.get(cmd.account)
        if acct is None:
            return _unknown(cmd, cmd.account)
        if cmd.amount <= 0:
            return [rejected(cmd, ERR_AMOUNT)]
        if cmd.amount > self.view.max_withdraw(acct):
            return [rejected(cmd, ERR_BALANCE)]
        return self.ledger.credit(acct, -cmd.amount, "withdrawals", "WITHDRAW", "TRANSFER", now)

    def transfer(self, cmd: Transfer, now: int) -> list:
        src = self.ledger.accounts.get(cmd.from_account)
        if src is None:
            return _unknown(cmd, cmd.from_account)
        dst = self.ledger.accounts.get(cmd.to_account)
        if dst is None:
            return _unknown(cmd, cmd.to_account)
        related = src.parent == dst.id or dst.parent == src.id or (
            src.parent is not None and src.parent == dst.parent)
        if src is dst or not related:
            return [rejected(cmd, (-1102, "Transfers go between a master account and its sub-accounts."))]
        if cmd.amount <= 0:
            return [rejected(cmd, ERR_AMOUNT)]
        if cmd.amount > self.view.max_withdraw(src):
            return [rejected(cmd, ERR_BALANCE)]
        return (self.ledger.credit(src, -cmd.amount, "transfers_out", "TRANSFER", "TRANSFER", now)
                + self.ledger.credit(dst, cmd.amount, "transfers_in", "TRANSFER", "TRANSFER", now))

    def universal_transfer(self, cmd: UniversalTransfer, now: int) -> list:
        """Spot wallet to futures wallet (MAIN_UMFUTURE) or back (UMFUTURE_MAIN, at most max withdraw)."""
        acct = self.ledger.accounts.get(cmd.account)
        if acct is None:
            return _unknown(cmd, cmd.account)
        if cmd.kind not in UNIVERSAL_TRANSFER_KINDS:
            return [rejected(cmd, ERR_TRANSFER_TYPE)]
        if cmd.amount <= 0:
            return [rejected(cmd, ERR_AMOUNT)]
        available = acct.spot_wallet if cmd.kind == UNIVERSAL_TRANSFER_KINDS[0] else self.view.max_withdraw(acct)
        if cmd.amount > available:
            return [rejected(cmd, ERR_WALLET_BALANCE)]
        return self.ledger.universal_transfer(acct, cmd.kind, cmd.amount, now)

    def reset(self, cmd: ResetAccount, now: int) -> list:
        """Classroom reset: cancel orders, close positions at mark (no fee), wallet back to a deposit."""
        acct = self.ledger.accounts.get(cmd.account)
        if acct is None:
            return _unknown(cmd, cmd.account)
        target = self.initial_deposit.get(acct.id, 0) if cmd.deposit is None else cmd.deposit
        if target < 0:
            return [rejected(cmd, ERR_AMOUNT)]
        out: list = []
        self.ledger.sweep_spot(acct)  # the target is the account's whole money: the spot wallet comes back
        self.orders.cancel_where(out, acct, lambda o: False, "RESET", now)
        for _, pos in sorted(acct.positions.items()):
            self.ledger.apply_fill(acct, pos, -pos.qty, self.view.mark_of(pos), now)
            out.append(PositionUpdate(now, acct.id, pos.symbol, pos.side, 0, 0, pos.isolated, 0,
                                      pos.leverage, "RESET"))
        diff = target - acct.cross_wallet
        if diff > 0:
            out += self.ledger.credit(acct, diff, "deposits", "RESET", "TRANSFER", now)
        elif diff < 0:
            out += self.ledger.credit(acct, diff, "withdrawals", "RESET", "TRANSFER", now)
        return out

    def set_margin_type(self, cmd: SetMarginType, now: int) -> list:
        acct = self.ledger.accounts[cmd.account]
        if (cmd.symbol in acct.isolated) == cmd.isolated:
            return [rejected(cmd, (-4046, "No need to change margin type."))]
        orders, position = acct.has_symbol_activity(cmd.symbol)
        if orders:
            return [rejected(cmd, (-4047, "Margin type cannot be changed if there exists open orders."))]
        if position:
            return [rejected(cmd, (-4048, "Margin type cannot be changed if there exists position."))]
        if cmd.isolated:
            acct.isolated.add(cmd.symbol)
        else:
            acct.isolated.discard(cmd.symbol)
        return [SettingChanged(now, acct.id, cmd.symbol, "marginType", "ISOLATED" if cmd.isolated else "CROSSED")]

    def set_position_mode(self, cmd: SetPositionMode, now: int) -> list:
        acct = self.ledger.accounts.get(cmd.account)
        if acct is None:
            return _unknown(cmd, cmd.account)
        if acct.hedge == cmd.hedge:
            return [rejected(cmd, (-4059, "No need to change position side."))]
        if acct.open_orders:
            return [rejected(cmd, (-4067, "Position side cannot be changed if there exists open orders."))]
        if any(p.qty for p in acct.positions.values()):
            return [rejected(cmd, (-4068, "Position side cannot be changed if there exists position."))]
        acct.hedge = cmd.hedge
        # leverage carries over: one-way BOTH <-> both hedge legs
        for (symbol, side), lev in sorted(acct.leverage.items()):
            if cmd.hedge and side == BOTH:
                acct.leverage[(symbol, LONG)] = acct.leverage[(symbol, SHORT)] = lev
            elif not cmd.hedge and side == LONG:
                acct.leverage[(symbol, BOTH)] = lev
        return [SettingChanged(now, acct.id, "", "dualSidePosition", "true" if cmd.hedge else "false")]

    def set_leverage(self, cmd: SetLeverage, now: int) -> list:
        acct = self.ledger.accounts.get(cmd.account)
        if acct is None:
            return _unknown(cmd, cmd.account)
        inst = self.instruments.get(cmd.symbol)
        if inst is None:
            return [rejected(cmd, ERR["symbol"])]
        if not 1 <= cmd.leverage <= inst.max_leverage:
            return [rejected(cmd, (-4028, f"Leverage {cmd.leverage} is not valid"))]
        if cmd.position_side not in (BOTH, LONG, SHORT) or (cmd.position_side != BOTH and not acct.hedge):
            return [rejected(cmd, ERR["position_side"])]
        sides = [cmd.position_side] if cmd.position_side != BOTH else ([LONG, SHORT] if acct.hedge else [BOTH])
        max_notional = inst.max_notional(cmd.leverage)
        for side in sides:
            pos = acct.positions.get((cmd.symbol, side))
            if pos is None or not pos.qty:
                continue
            notional = pos.notional(self.view.mark_of(pos))
            if notional > max_notional:
                return [rejected(cmd, ERR["max_position"])]
            if pos.isolated and cmd.leverage < pos.leverage:
                equity = pos.isolated_wallet + min(0, pos.pnl(self.view.mark_of(pos)))
                if initial_margin(notional, cmd.leverage) > equity:
                    return [rejected(cmd, (-4161, "Leverage reduction is not supported in Isolated Margin "
                                                  "Mode with open positions."))]
        for side in sides:
            acct.leverage[leg_key(cmd.symbol, side)] = cmd.leverage
            pos = acct.positions.get((cmd.symbol, side))
            if pos is not None:
                self.ledger.set_terms(acct, pos, leverage=cmd.leverage)
        return [SettingChanged(now, acct.id, cmd.symbol, "leverage", str(cmd.leverage), cmd.position_side)]

    def adjust_margin(self, cmd: AdjustIsolatedMargin, now: int) -> list:
        acct = self.ledger.accounts[cmd.account]
        side = cmd.position_side if acct.hedge else BOTH
        if acct.hedge and side == BOTH:
            return [rejected(cmd, ERR["position_side"])]
        pos = acct.positions.get((cmd.symbol, side))
        if cmd.amount <= 0:
            return [rejected(cmd, ERR_AMOUNT)]
        if pos is None or not pos.qty:
            return [rejected(cmd, (-4054, "Cannot add position margin: position is 0."))]
        if not pos.isolated:
            return [rejected(cmd, (-4049, "Add margin only support for isolated position."))]
        if cmd.add:
            if cmd.amount > self.view.max_withdraw(acct):
                return [rejected(cmd, (-4050, "Cross balance insufficient."))]
            change = cmd.amount
        else:
            mark = self.view.mark_of(pos)
            keep = initial_margin(pos.notional(mark), pos.leverage)
            removable = pos.isolated_wallet + min(0, pos.pnl(mark)) - keep
            if cmd.amount > removable:
                return [rejected(cmd, (-4051, "Isolated balance insufficient."))]
            change = -cmd.amount
        self.ledger.move_isolated(acct, pos, change)
        acct.update_ts = now
        return [BalanceUpdate(now, acct.id, acct.cross_wallet, -change, "MARGIN_TRANSFER"),
                PositionUpdate(now, acct.id, pos.symbol, pos.side, pos.qty, pos.entry_price, True,
                               pos.isolated_wallet, pos.leverage, "MARGIN_TRANSFER"),
                SettingChanged(now, acct.id, cmd.symbol, "isolatedMargin", fmt_trim(pos.isolated_wallet), pos.side)]

    def set_auto_add(self, cmd: SetAutoAddMargin, now: int) -> list:
        acct = self.ledger.accounts[cmd.account]
        side = cmd.position_side if acct.hedge else BOTH
        key = (cmd.symbol, side)
        if cmd.enabled:
            acct.auto_add.add(key)
        else:
            acct.auto_add.discard(key)
        pos = acct.positions.get(key)
        if pos is not None:
            self.ledger.set_terms(acct, pos, auto_add=cmd.enabled)
        return [SettingChanged(now, acct.id, cmd.symbol, "autoAddMargin", "true" if cmd.enabled else "false", side)]
