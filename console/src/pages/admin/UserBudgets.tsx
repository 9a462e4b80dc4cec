/** A user's budgets in the user detail panel: meters, editing a limit, deleting, adding one. */
import { useState, type FormEvent } from 'react';
import { request, type ApiError, toApiError } from '../../api/client';
import { gql } from '../../api/gql';
import { useQuery } from '../../api/hooks';
import { common } from '../../i18n/common';
import { useLang, useText } from '../../i18n';
import { Badge, ErrorBox, Field, Loading, Meter } from '../../ui/components';
import { decimalToMicros, limitShares, microsToDecimal, money } from '../../ui/format';
import { text } from './Users.text';
import { Confirm, PERIODS, type Budget, type Period } from './UsersShared';

const BUDGETS = gql`
  query UsersBudgets($userId: ID) {
    budgets(userId: $userId) {
      id scope userId period currency limitMicros spentMicros reservedMicros remainingMicros
    }
  }
`;

const CREATE_BUDGET = gql`
  mutation UsersCreateBudget($input: CreateBudgetInput!) {
    createBudget(input: $input) { id }
  }
`;

const UPDATE_BUDGET = gql`
  mutation UsersUpdateBudget($id: ID!, $limitMicros: Micros!) {
    updateBudget(id: $id, limitMicros: $limitMicros) { id limitMicros }
  }
`;

const DELETE_BUDGET = gql`
  mutation UsersDeleteBudget($id: ID!) {
    deleteBudget(id: $id)
  }
`;

export function UserBudgets({ userId }: { userId: string }) {
  const t = useText(text);
  const c = useText(common);
  const { locale } = useLang();
  const budgets = useQuery<{ budgets: Budget[] }>(BUDGETS, { userId });
  const [editing, setEditing] = useState<string | null>(null);
  const [limit, setLimit] = useState('');
  const [deleting, setDeleting] = useState<Budget | null>(null);
  const [error, setError] = useState<ApiError>();
  const [invalid, setInvalid] = useState(false);

  const saveLimit = async (b: Budget) => {
    const micros = decimalToMicros(limit);
    if (micros == null) {
      setInvalid(true);
      return;
    }
    setInvalid(false);
    setError(undefined);
    try {
      await request(UPDATE_BUDGET, { id: b.id, limitMicros: micros });
      setEditing(null);
      budgets.reload();
    } catch (e) {
      setError(toApiError(e));
    }
  };

  const list = budgets.data?.budgets ?? [];
  return (
    <div data-testid="budgets">
      <ErrorBox error={budgets.error} onRetry={budgets.reload} />
      <Loading show={budgets.loading && !budgets.data} />
      {budgets.data && list.length === 0 && <p className="muted">{t.noBudgets}</p>}
      {list.length > 0 && (
        <ul className="users-budgets">
          {list.map((b) => (
            <li key={b.id} data-testid="budget">
              <div className="users-budget-head">
                <strong>{t[b.period]}</strong>
                <Badge tone={b.scope === 'USER' ? 'info' : 'muted'}>{b.scope === 'USER' ? t.scopeUser : t.scopeGlobal}</Badge>
              </div>
              <BudgetMeter budget={b} />
              <dl>
                <dt>{t.limit}</dt>
                <dd data-testid="budget-limit">{money(b.limitMicros, b.currency, locale)}</dd>
                <dt>{t.spent}</dt>
                <dd>{money(b.spentMicros, b.currency, locale)}</dd>
                <dt>{t.reserved}</dt>
                <dd>{money(b.reservedMicros, b.currency, locale)}</dd>
                <dt>{t.remaining}</dt>
                <dd>{money(b.remainingMicros, b.currency, locale)}</dd>
              </dl>
              {editing === b.id ? (
                <form
                  className="row"
                  onSubmit={(e) => {
                    e.preventDefault();
                    void saveLimit(b);
                  }}
                >
                  <Field label={t.editLimitOf(t[b.period])}>
                    <input inputMode="decimal" value={limit} onChange={(e) => setLimit(e.target.value)} aria-invalid={invalid || undefined} />
                  </Field>
                  <button type="submit" className="primary">
                    {c.save}
                  </button>
                  <button type="button" onClick={() => setEditing(null)}>
                    {c.cancel}
                  </button>
                </form>
              ) : (
                <div className="row">
                  <button
                    type="button"
                    onClick={() => {
                      setEditing(b.id);
                      setInvalid(false);
                      setLimit(microsToDecimal(b.limitMicros));
                    }}
                  >
                    {c.edit}
                  </button>
                  <button type="button" className="danger" aria-label={t.deleteBudget(t[b.period])} onClick={() => setDeleting(b)}>
                    {c.delete}
                  </button>
                </div>
              )}
            </li>
          ))}
        </ul>
      )}
      {invalid && (
        <p className="error" role="alert">
          {t.badAmount}
        </p>
      )}
      <ErrorBox error={error} />
      <NewBudget userId={userId} onCreated={budgets.reload} />
      <Confirm
        question={deleting ? t.confirmDeleteBudget(t[deleting.period]) : null}
        danger
        onClose={() => setDeleting(null)}
        onConfirm={async () => {
          if (!deleting) return;
          await request(DELETE_BUDGET, { id: deleting.id });
          budgets.reload();
        }}
      />
    </div>
  );
}

function BudgetMeter({ budget }: { budget: Budget }) {
  if (BigInt(budget.limitMicros) <= 0n) return null;
  return <Meter shares={limitShares(budget.limitMicros, budget.spentMicros, budget.reservedMicros)} aria-hidden="true" />;
}

function NewBudget({ userId, onCreated }: { userId: string; onCreated(): void }) {
  const t = useText(text);
  const c = useText(common);
  const [period, setPeriod] = useState<Period>('MONTH');
  const [currency, setCurrency] = useState('CNY');
  const [amount, setAmount] = useState('');
  const [problem, setProblem] = useState<string>();
  const [error, setError] = useState<ApiError>();
  const [busy, setBusy] = useState(false);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(undefined);
    const micros = decimalToMicros(amount);
    const code = currency.trim().toUpperCase();
    if (micros == null) return setProblem(t.badAmount);
    if (!/^[A-Z]{3}$/.test(code)) return setProblem(t.badCurrency);
    setProblem(undefined);
    setBusy(true);
    try {
      await request(CREATE_BUDGET, { input: { userId, period, currency: code, limitMicros: micros } });
      setAmount('');
      onCreated();
    } catch (e) {
      setError(toApiError(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form onSubmit={submit} className="users-form users-new-budget" aria-label={t.addBudget}>
      <h4>{t.addBudget}</h4>
      <div className="row">
        <Field label={t.period}>
          <select value={period} onChange={(e) => setPeriod(e.target.value as Period)}>
            {PERIODS.map((p) => (
              <option key={p} value={p}>
                {t[p]}
              </option>
            ))}
          </select>
        </Field>
        <Field label={t.currency}>
          <input value={currency} onChange={(e) => setCurrency(e.target.value)} maxLength={3} size={4} autoComplete="off" />
        </Field>
        <Field label={t.limitAmount}>
          <input inputMode="decimal" value={amount} onChange={(e) => setAmount(e.target.value)} placeholder="25.00" aria-invalid={problem ? true : undefined} />
        </Field>
        <button type="submit" className="primary" disabled={busy}>
          {c.create}
        </button>
      </div>
      {problem && (
        <p className="error" role="alert">
          {problem}
        </p>
      )}
      <ErrorBox error={error} />
    </form>
  );
}
