"""Account commands: accounts and sub-accounts, wallets, margin type, position mode, leverage,
isolated margin, cancels. Each either changes state and emits events, or is rejected with the
venue's code and message and changes nothing (margin-rules.md "Mode rules")."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .accounts import Account, apply_fill, leg_key
from .fixed import fmt_trim
from .margin import initial_margin
from .messages import (
    BOTH, LONG, SHORT, AccountCreated, AdjustIsolatedMargin, BalanceUpdate, CancelAllOrders, CancelOrder,
    CreateAccount, Deposit, PositionUpdate, ResetAccount, SetAutoAddMargin, SetLeverage, SetMarginType,
    SetPositionMode, SettingChanged, Transfer, Withdraw,
)
from .orders import ERR

if TYPE_CHECKING:
    from .exchange import Exchange

ERR_UNKNOWN_ACCOUNT = -1102
ERR_AMOUNT = (-1102, "Mandatory parameter 'amount' was not sent, was empty/null, or malformed.")
ERR_BALANCE = (-2018, "Balance is insufficient.")


class AccountCommands:
    """Mixin: account and settings commands of the Exchange."""

    def _account(self: "Exchange", cmd, aid: int | None = None) -> Account | None:
        aid = cmd.account if aid is None else aid
        acct = self.accounts.get(aid)
        if acct is None:
            self._reject(cmd, (ERR_UNKNOWN_ACCOUNT, f"Unknown account {aid}."))
        return acct

    def _account_and_symbol(self: "Exchange", cmd) -> Account | None:
        """The command's account when it exists and names a known symbol (else rejected, None)."""
        acct = self._account(cmd)
        if acct is not None and cmd.symbol not in self.instruments:
            self._reject(cmd, ERR["symbol"])
            return None
        return acct

    def _credit(self: "Exchange", acct: Account, amount: int, ledger_key: str, reason: str, income: str) -> None:
        acct.cross_wallet += amount
        acct.ledger[ledger_key] += abs(amount)
        acct.update_ts = self.now
        self._income(acct, "", income, amount)
        self.out.append(BalanceUpdate(self.now, acct.id, acct.cross_wallet, amount, reason))
        self._account_changed(acct)

    def _create_account(self: "Exchange", cmd: CreateAccount) -> None:
        if cmd.parent is not None and cmd.parent not in self.accounts:
            return self._reject(cmd, (ERR_UNKNOWN_ACCOUNT, f"Unknown parent account {cmd.parent}."))
        if cmd.deposit < 0:
            return self._reject(cmd, ERR_AMOUNT)
        if cmd.api_key and cmd.api_key in self.accounts_by_key:
            return self._reject(cmd, (-1102, "API key already in use."))
        self.next_account_id += 1
        aid = self.next_account_id
        acct = Account(aid, cmd.name, cmd.parent, cmd.api_key, cmd.api_secret, cmd.ts, self.config.history_limit)
        self.accounts[aid] = acct
        if cmd.api_key:
            self.accounts_by_key[cmd.api_key] = aid
        if cmd.parent is not None:
            self.accounts[cmd.parent].children.append(aid)
        self.initial_deposit[aid] = cmd.deposit
        self.out.append(AccountCreated(cmd.ts, aid, cmd.name, cmd.parent))
        if cmd.deposit:
            self._credit(acct, cmd.deposit, "deposits", "DEPOSIT", "TRANSFER")

    def _deposit(self: "Exchange", cmd: Deposit) -> None:
        acct = self._account(cmd)
        if acct is None:
            return
        if cmd.amount <= 0:
            return self._reject(cmd, ERR_AMOUNT)
        self._credit(acct, cmd.amount, "deposits", "DEPOSIT", "TRANSFER")

    def max_withdraw(self: "Exchange", acct: Account) -> int:
        """What can leave the cross wallet: available balance, never more than the wallet."""
        return max(0, min(acct.cross_wallet, self._available(acct)))

    def _withdraw(self: "Exchange", cmd: Withdraw) -> None:
        acct = self._account(cmd)
        if acct is None:
            return
        if cmd.amount <= 0:
            return self._reject(cmd, ERR_AMOUNT)
        if cmd.amount > self.max_withdraw(acct):
            return self._reject(cmd, ERR_BALANCE)
        self._credit(acct, -cmd.amount, "withdrawals", "WITHDRAW", "TRANSFER")

    def _transfer(self: "Exchange", cmd: Transfer) -> None:
        src = self._account(cmd, cmd.from_account)
        if src is None:
            return
        dst = self._account(cmd, cmd.to_account)
        if dst is None:
            return
        related = src.parent == dst.id or dst.parent == src.id or (
            src.parent is not None and src.parent == dst.parent)
        if src is dst or not related:
            return self._reject(cmd, (-1102, "Transfers go between a master account and its sub-accounts."))
        if cmd.amount <= 0:
            return self._reject(cmd, ERR_AMOUNT)
        if cmd.amount > self.max_withdraw(src):
            return self._reject(cmd, ERR_BALANCE)
        self._credit(src, -cmd.amount, "transfers_out", "TRANSFER", "TRANSFER")
        self._credit(dst, cmd.amount, "transfers_in", "TRANSFER", "TRANSFER")

    def _reset(self: "Exchange", cmd: ResetAccount) -> None:
        """Classroom reset: cancel orders, close positions at mark (no fee), wallet back to a deposit."""
        acct = self._account(cmd)
        if acct is None:
            return
        target = self.initial_deposit.get(acct.id, 0) if cmd.deposit is None else cmd.deposit
        if target < 0:
            return self._reject(cmd, ERR_AMOUNT)
        self._cancel_where(acct, lambda o: False, "RESET")
        for key, pos in sorted(acct.positions.items()):
            mark = self._mark_of(pos)
            apply_fill(acct, pos, -pos.qty, mark, self.now)
            self.out.append(PositionUpdate(self.now, acct.id, pos.symbol, pos.side, 0, 0, pos.isolated, 0,
                                           pos.leverage, "RESET"))
            del acct.positions[key]
            self._position_changed(acct, pos)
        diff = target - acct.cross_wallet
        if diff > 0:
            self._credit(acct, diff, "deposits", "RESET", "TRANSFER")
        elif diff < 0:
            self._credit(acct, diff, "withdrawals", "RESET", "TRANSFER")

    def _set_margin_type(self: "Exchange", cmd: SetMarginType) -> None:
        acct = self._account_and_symbol(cmd)
        if acct is None:
            return
        if (cmd.symbol in acct.isolated) == cmd.isolated:
            return self._reject(cmd, (-4046, "No need to change margin type."))
        orders, position = acct.has_symbol_activity(cmd.symbol)
        if orders:
            return self._reject(cmd, (-4047, "Margin type cannot be changed if there exists open orders."))
        if position:
            return self._reject(cmd, (-4048, "Margin type cannot be changed if there exists position."))
        if cmd.isolated:
            acct.isolated.add(cmd.symbol)
        else:
            acct.isolated.discard(cmd.symbol)
        self.out.append(SettingChanged(self.now, acct.id, cmd.symbol, "marginType",
                                       "ISOLATED" if cmd.isolated else "CROSSED"))

    def _set_position_mode(self: "Exchange", cmd: SetPositionMode) -> None:
        acct = self._account(cmd)
        if acct is None:
            return
        if acct.hedge == cmd.hedge:
            return self._reject(cmd, (-4059, "No need to change position side."))
        if acct.open_orders:
            return self._reject(cmd, (-4067, "Position side cannot be changed if there exists open orders."))
        if any(p.qty for p in acct.positions.values()):
            return self._reject(cmd, (-4068, "Position side cannot be changed if there exists position."))
        acct.hedge = cmd.hedge
        # leverage carries over: one-way BOTH <-> both hedge legs
        for (symbol, side), lev in sorted(acct.leverage.items()):
            if cmd.hedge and side == BOTH:
                acct.leverage[(symbol, LONG)] = acct.leverage[(symbol, SHORT)] = lev
            elif not cmd.hedge and side == LONG:
                acct.leverage[(symbol, BOTH)] = lev
        self.out.append(SettingChanged(self.now, acct.id, "", "dualSidePosition", "true" if cmd.hedge else "false"))

    def _set_leverage(self: "Exchange", cmd: SetLeverage) -> None:
        acct = self._account(cmd)
        if acct is None:
            return
        inst = self.instruments.get(cmd.symbol)
        if inst is None:
            return self._reject(cmd, ERR["symbol"])
        if not 1 <= cmd.leverage <= inst.max_leverage:
            return self._reject(cmd, (-4028, f"Leverage {cmd.leverage} is not valid"))
        if cmd.position_side not in (BOTH, LONG, SHORT) or (cmd.position_side != BOTH and not acct.hedge):
            return self._reject(cmd, ERR["position_side"])
        sides = [cmd.position_side] if cmd.position_side != BOTH else ([LONG, SHORT] if acct.hedge else [BOTH])
        max_notional = inst.max_notional(cmd.leverage)
        for side in sides:
            pos = acct.positions.get((cmd.symbol, side))
            if pos is None or not pos.qty:
                continue
            notional = pos.notional(self._mark_of(pos))
            if notional > max_notional:
                return self._reject(cmd, ERR["max_position"])
            if pos.isolated and cmd.leverage < pos.leverage:
                equity = pos.isolated_wallet + min(0, pos.pnl(self._mark_of(pos)))
                if initial_margin(notional, cmd.leverage) > equity:
                    return self._reject(cmd, (-4161, "Leverage reduction is not supported in Isolated Margin "
                                                     "Mode with open positions."))
        for side in sides:
            acct.leverage[leg_key(cmd.symbol, side)] = cmd.leverage
            pos = acct.positions.get((cmd.symbol, side))
            if pos is not None:
                pos.leverage = cmd.leverage
                self._position_changed(acct, pos)
        self.out.append(SettingChanged(self.now, acct.id, cmd.symbol, "leverage", str(cmd.leverage),
                                       cmd.position_side))

    def _adjust_margin(self: "Exchange", cmd: AdjustIsolatedMargin) -> None:
        acct = self._account_and_symbol(cmd)
        if acct is None:
            return
        side = cmd.position_side if acct.hedge else BOTH
        if acct.hedge and side == BOTH:
            return self._reject(cmd, ERR["position_side"])
        pos = acct.positions.get((cmd.symbol, side))
        if cmd.amount <= 0:
            return self._reject(cmd, ERR_AMOUNT)
        if pos is None or not pos.qty:
            return self._reject(cmd, (-4054, "Cannot add position margin: position is 0."))
        if not pos.isolated:
            return self._reject(cmd, (-4049, "Add margin only support for isolated position."))
        if cmd.add:
            if cmd.amount > self.max_withdraw(acct):
                return self._reject(cmd, (-4050, "Cross balance insufficient."))
            change = cmd.amount
        else:
            mark = self._mark_of(pos)
            keep = initial_margin(pos.notional(mark), pos.leverage)
            removable = pos.isolated_wallet + min(0, pos.pnl(mark)) - keep
            if cmd.amount > removable:
                return self._reject(cmd, (-4051, "Isolated balance insufficient."))
            change = -cmd.amount
        pos.isolated_wallet += change
        acct.cross_wallet -= change
        acct.update_ts = self.now
        self.out.append(BalanceUpdate(self.now, acct.id, acct.cross_wallet, -change, "MARGIN_TRANSFER"))
        self.out.append(PositionUpdate(self.now, acct.id, pos.symbol, pos.side, pos.qty, pos.entry_price, True,
                                       pos.isolated_wallet, pos.leverage, "MARGIN_TRANSFER"))
        self.out.append(SettingChanged(self.now, acct.id, cmd.symbol, "isolatedMargin",
                                       fmt_trim(pos.isolated_wallet), pos.side))
        self._position_changed(acct, pos)

    def _set_auto_add(self: "Exchange", cmd: SetAutoAddMargin) -> None:
        acct = self._account_and_symbol(cmd)
        if acct is None:
            return
        side = cmd.position_side if acct.hedge else BOTH
        key = (cmd.symbol, side)
        if cmd.enabled:
            acct.auto_add.add(key)
        else:
            acct.auto_add.discard(key)
        pos = acct.positions.get(key)
        if pos is not None:
            pos.auto_add = cmd.enabled
            self._position_changed(acct, pos)
        self.out.append(SettingChanged(self.now, acct.id, cmd.symbol, "autoAddMargin",
                                       "true" if cmd.enabled else "false", side))

    def _cancel_order(self: "Exchange", cmd: CancelOrder) -> None:
        acct = self._account_and_symbol(cmd)
        if acct is None:
            return
        order = acct.open_order(cmd.order_id, cmd.client_order_id)
        if order is None or order.symbol != cmd.symbol:
            return self._reject(cmd, ERR["unknown_order"])
        self._cancel(acct, order)

    def _cancel_all(self: "Exchange", cmd: CancelAllOrders) -> None:
        acct = self._account_and_symbol(cmd)
        if acct is None:
            return
        if cmd.which not in ("ALL", "REGULAR", "CONDITIONAL"):
            return self._reject(cmd, (-1102, "Parameter 'which' must be ALL, REGULAR or CONDITIONAL."))
        keep_conditional = cmd.which == "REGULAR"
        keep_regular = cmd.which == "CONDITIONAL"
        self._cancel_where(acct, lambda o: o.symbol != cmd.symbol or (o.conditional and keep_conditional)
                           or (not o.conditional and keep_regular), "")
