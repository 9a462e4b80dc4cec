/** The user detail panel of the Users page: two-step sign-in (and its reset), the user's rate
 * limits and budgets. */
import { useEffect, useState, type FormEvent, type ReactNode } from 'react';
import { request, type ApiError, toApiError } from '../../api/client';
import { gql } from '../../api/gql';
import { useQuery } from '../../api/hooks';
import { common } from '../../i18n/common';
import { useLang, useText } from '../../i18n';
import { ErrorBox, Field, Loading } from '../../ui/components';
import { text } from './Users.text';
import { UserBudgets } from './UserBudgets';
import { type UserRow } from './UsersShared';

const USER = gql`
  query UsersOne($id: ID!) {
    user(id: $id) { id email displayName role disabled createdAt mfaEnabled passwordChangeRequired }
  }
`;

const RESET_MFA = gql`
  mutation UsersResetMfa($userId: ID!) {
    resetUserMfa(userId: $userId) { id mfaEnabled }
  }
`;

const REQUIRE_PASSWORD = gql`
  mutation UsersRequirePasswordChange($userId: ID!) {
    requirePasswordChange(userId: $userId) { id passwordChangeRequired }
  }
`;

const LIMITS = gql`
  query UsersRateLimits($userId: ID) {
    rateLimits(userId: $userId) { userId requestsPerMinute tokensPerMinute }
  }
`;

const SET_LIMITS = gql`
  mutation UsersSetRateLimits($userId: ID!, $requestsPerMinute: Int, $tokensPerMinute: Int) {
    setRateLimits(userId: $userId, requestsPerMinute: $requestsPerMinute, tokensPerMinute: $tokensPerMinute) {
      userId requestsPerMinute tokensPerMinute
    }
  }
`;

function Section({ id, title, children }: { id: string; title: string; children: ReactNode }) {
  return (
    <section aria-labelledby={id} className="users-section">
      <h3 id={id}>{title}</h3>
      {children}
    </section>
  );
}

export function UserDetail({ id, onClose }: { id: string; onClose(): void }) {
  const t = useText(text);
  const user = useQuery<{ user: UserRow }>(USER, { id });
  const u = user.data?.user;
  return (
    <aside className="card detail users-detail" aria-labelledby="users-detail-title" data-testid="user-detail">
      <div className="users-detail-head">
        <h2 id="users-detail-title">{u ? u.displayName : t.detailTitle}</h2>
        <button type="button" onClick={onClose}>
          {t.closeDetail}
        </button>
      </div>
      <ErrorBox error={user.error} onRetry={user.reload} />
      <Loading show={user.loading && !u} />
      {u && (
        <>
          <p className="muted users-detail-sub">
            {u.email} · {t[u.role]} · {u.disabled ? t.disabled : t.active}
          </p>
          <Section id="users-two-step-title" title={t.twoStep}>
            <TwoStep user={u} onChanged={user.reload} />
          </Section>
          <Section id="users-password-title" title={t.password}>
            <RequirePassword user={u} onChanged={user.reload} />
          </Section>
          <Section id="users-limits-title" title={t.rateLimits}>
            <RateLimitsForm userId={u.id} />
          </Section>
          <Section id="users-budgets-title" title={t.budgets}>
            <UserBudgets userId={u.id} />
          </Section>
        </>
      )}
    </aside>
  );
}

/** Whether a new password is required of the user, and the admin's requirement of one. */
function RequirePassword({ user, onChanged }: { user: UserRow; onChanged(): void }) {
  const t = useText(text);
  return (
    <Confirmed
      state={user.passwordChangeRequired ? t.passwordRequired : t.passwordFine}
      action={user.passwordChangeRequired ? undefined : t.requirePassword}
      note={t.requirePasswordNote}
      confirm={t.requirePasswordConfirm}
      done={t.passwordRequiredDone}
      run={() => request(REQUIRE_PASSWORD, { userId: user.id })}
      onDone={onChanged}
    />
  );
}

/** A state, and an action behind a confirmation that says what it does. */
function Confirmed({
  state,
  action,
  note,
  confirm,
  done: doneText,
  run,
  onDone,
}: {
  state: string;
  action: string | undefined;
  note: string;
  confirm: string;
  done: string;
  run(): Promise<unknown>;
  onDone(): void;
}) {
  const t = useText(text);
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError>();
  const [done, setDone] = useState(false);
  const go = async () => {
    setBusy(true);
    setError(undefined);
    try {
      await run();
      setDone(true);
      setConfirming(false);
      onDone();
    } catch (err) {
      setError(toApiError(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="stack">
      <p>{state}</p>
      {done && (
        <p className="ok-text" role="status">
          {doneText}
        </p>
      )}
      <ErrorBox error={error} />
      {action && !confirming && (
        <div>
          <button type="button" className="danger" onClick={() => setConfirming(true)}>
            {action}
          </button>
        </div>
      )}
      {action && confirming && (
        <div className="stack">
          <p className="muted">{note}</p>
          <div className="row">
            <button type="button" className="danger" disabled={busy} onClick={() => void go()}>
              {confirm}
            </button>
            <button type="button" onClick={() => setConfirming(false)}>
              {t.cancelReset}
            </button>
          </div>
        </div>
      )}
    </div>
  );
}

/** Whether the user has two-step sign-in on, and the admin's reset for a lost phone. */
function TwoStep({ user, onChanged }: { user: UserRow; onChanged(): void }) {
  const t = useText(text);
  return (
    <Confirmed
      state={user.mfaEnabled ? t.twoStepOn : t.twoStepOff}
      action={user.mfaEnabled ? t.resetTwoStep : undefined}
      note={t.resetTwoStepNote}
      confirm={t.resetTwoStepConfirm}
      done={t.twoStepReset}
      run={() => request(RESET_MFA, { userId: user.id })}
      onDone={onChanged}
    />
  );
}

/** `""` or a whole number ≥ 1; undefined when invalid. */
function parseLimit(value: string): number | null | undefined {
  const v = value.trim();
  if (!v) return null;
  if (!/^\d{1,10}$/.test(v)) return undefined;
  const n = Number(v);
  return n >= 1 && n <= 2_147_483_647 ? n : undefined;
}

function RateLimitsForm({ userId }: { userId: string }) {
  const t = useText(text);
  const c = useText(common);
  const { locale } = useLang();
  const limits = useQuery<{ rateLimits: { requestsPerMinute: number | null; tokensPerMinute: number | null } }>(LIMITS, { userId });
  const [rpm, setRpm] = useState('');
  const [tpm, setTpm] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError>();
  const [invalid, setInvalid] = useState(false);
  const [saved, setSaved] = useState(false);
  const current = limits.data?.rateLimits;
  useEffect(() => {
    if (!current) return;
    setRpm(current.requestsPerMinute == null ? '' : String(current.requestsPerMinute));
    setTpm(current.tokensPerMinute == null ? '' : String(current.tokensPerMinute));
  }, [current]);
  const show = (n: number | null | undefined) => (n == null ? t.unlimited : new Intl.NumberFormat(locale).format(n));
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const r = parseLimit(rpm);
    const k = parseLimit(tpm);
    setSaved(false);
    if (r === undefined || k === undefined) {
      setInvalid(true);
      return;
    }
    setInvalid(false);
    setBusy(true);
    setError(undefined);
    try {
      await request(SET_LIMITS, { userId, requestsPerMinute: r, tokensPerMinute: k });
      setSaved(true);
      limits.reload();
    } catch (e) {
      setError(toApiError(e));
    } finally {
      setBusy(false);
    }
  };
  if (limits.error) return <ErrorBox error={limits.error} onRetry={limits.reload} />;
  if (!current) return <Loading />;
  return (
    <form onSubmit={submit} className="users-form" data-testid="rate-limits">
      <p className="muted">{t.limitHint}</p>
      <div className="row">
        <Field label={t.rpm} hint={t.inForce(show(current.requestsPerMinute))}>
          <input inputMode="numeric" value={rpm} onChange={(e) => setRpm(e.target.value)} aria-invalid={invalid || undefined} />
        </Field>
        <Field label={t.tpm} hint={t.inForce(show(current.tokensPerMinute))}>
          <input inputMode="numeric" value={tpm} onChange={(e) => setTpm(e.target.value)} aria-invalid={invalid || undefined} />
        </Field>
      </div>
      {invalid && (
        <p className="error" role="alert">
          {t.badInt}
        </p>
      )}
      <ErrorBox error={error} />
      <div className="row">
        <button type="submit" className="primary" disabled={busy}>
          {c.save}
        </button>
        {saved && (
          <span className="muted" role="status">
            {c.saved}
          </span>
        )}
      </div>
    </form>
  );
}
