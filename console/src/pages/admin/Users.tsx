/**
 * Users (admin): search and page through accounts, change a role (never your own), disable or
 * enable an account (after a confirmation), create one; `#/users/<id>` opens a user's rate
 * limits and budgets beside the list. The search is kept in the query string.
 */
import { useEffect, useState, type FormEvent, type ReactNode } from 'react';
import type { ViewProps } from '../../App';
import { ApiError, request } from '../../api/client';
import { gql } from '../../api/gql';
import { useQuery } from '../../api/hooks';
import { common } from '../../i18n/common';
import { defineText, useLang, useText } from '../../i18n';
import { href, navigate } from '../../router';
import { Badge, Dialog, ErrorBox, Field, Loading, Page, Pager, Table, usePager, type Column } from '../../ui/components';
import { dateTime, decimalToMicros, microsToDecimal, money } from '../../ui/format';
import './Users.css';

const text = defineText({
  en: {
    title: 'Users',
    newUser: 'New user',
    searchLabel: 'Search by email or name',
    name: 'Name',
    email: 'Email',
    role: 'Role',
    roleOf: (name: string) => `Role of ${name}`,
    status: 'Status',
    created: 'Created',
    actions: 'Actions',
    active: 'Active',
    disabled: 'Disabled',
    you: 'you',
    USER: 'User',
    ADMIN: 'Administrator',
    disable: 'Disable',
    enable: 'Enable',
    disableOf: (name: string) => `Disable ${name}`,
    enableOf: (name: string) => `Enable ${name}`,
    confirmDisable: (name: string) => `Disable ${name}? Their sessions end and their tokens stop working at once.`,
    confirmEnable: (name: string) => `Enable ${name}? They can sign in again.`,
    roleChanged: (name: string, role: string) => `${name} is now: ${role}.`,
    userDisabled: (name: string) => `${name} is disabled.`,
    userEnabled: (name: string) => `${name} is enabled.`,
    created_: (email: string) => `Created ${email}.`,
    createTitle: 'Create a user',
    displayName: 'Display name',
    password: 'Password',
    passwordHint: 'At least 12 characters, hard to guess. They can change it later.',
    details: (name: string) => `Open ${name}`,
    detailTitle: 'User settings',
    closeDetail: 'Close',
    rateLimits: 'Rate limits',
    rpm: 'Requests per minute',
    tpm: 'Tokens per minute',
    limitHint: 'Empty: the server default.',
    inForce: (value: string) => `In force: ${value}`,
    unlimited: 'no limit',
    badInt: 'Enter a whole number of at least 1, or leave it empty.',
    budgets: 'Budgets',
    scope: 'Applies to',
    scopeUser: 'This user',
    scopeGlobal: 'Everyone',
    period: 'Period',
    DAY: 'Daily',
    WEEK: 'Weekly',
    MONTH: 'Monthly',
    TOTAL: 'In total',
    limit: 'Limit',
    spent: 'Spent',
    reserved: 'Reserved',
    remaining: 'Remaining',
    currency: 'Currency',
    addBudget: 'Add a budget',
    limitAmount: 'Limit (amount)',
    badAmount: 'Enter an amount such as 25 or 12.50 (up to 6 decimals).',
    badCurrency: 'Enter a three-letter currency code such as CNY.',
    editLimitOf: (period: string) => `New limit for the ${period.toLowerCase()} budget`,
    deleteBudget: (period: string) => `Delete the ${period.toLowerCase()} budget`,
    confirmDeleteBudget: (what: string) => `Delete the ${what} budget? This cannot be undone.`,
    noBudgets: 'No budget applies to this user.',
    confirm: 'Confirm',
  },
  zh: {
    title: '用户',
    newUser: '新建用户',
    searchLabel: '按邮箱或名称搜索',
    name: '名称',
    email: '邮箱',
    role: '角色',
    roleOf: (name: string) => `${name} 的角色`,
    status: '状态',
    created: '创建时间',
    actions: '操作',
    active: '正常',
    disabled: '已停用',
    you: '你',
    USER: '普通用户',
    ADMIN: '管理员',
    disable: '停用',
    enable: '启用',
    disableOf: (name: string) => `停用 ${name}`,
    enableOf: (name: string) => `启用 ${name}`,
    confirmDisable: (name: string) => `确定停用 ${name} 吗？其所有会话将立即结束，令牌立即失效。`,
    confirmEnable: (name: string) => `确定启用 ${name} 吗？启用后可重新登录。`,
    roleChanged: (name: string, role: string) => `${name} 的角色已改为：${role}。`,
    userDisabled: (name: string) => `已停用 ${name}。`,
    userEnabled: (name: string) => `已启用 ${name}。`,
    created_: (email: string) => `已创建 ${email}。`,
    createTitle: '创建用户',
    displayName: '显示名称',
    password: '密码',
    passwordHint: '至少 12 个字符，且不易被猜到。用户之后可以自行修改。',
    details: (name: string) => `打开 ${name}`,
    detailTitle: '用户设置',
    closeDetail: '关闭',
    rateLimits: '速率限制',
    rpm: '每分钟请求数',
    tpm: '每分钟 Token 数',
    limitHint: '留空则使用服务器默认值。',
    inForce: (value: string) => `当前生效：${value}`,
    unlimited: '不限',
    badInt: '请输入不小于 1 的整数，或留空。',
    budgets: '预算',
    scope: '适用范围',
    scopeUser: '该用户',
    scopeGlobal: '所有人',
    period: '周期',
    DAY: '每日',
    WEEK: '每周',
    MONTH: '每月',
    TOTAL: '总计',
    limit: '额度',
    spent: '已用',
    reserved: '已预留',
    remaining: '剩余',
    currency: '币种',
    addBudget: '添加预算',
    limitAmount: '额度（金额）',
    badAmount: '请输入金额，例如 25 或 12.50（最多 6 位小数）。',
    badCurrency: '请输入三位字母的币种代码，例如 CNY。',
    editLimitOf: (period: string) => `${period}预算的新额度`,
    deleteBudget: (period: string) => `删除${period}预算`,
    confirmDeleteBudget: (what: string) => `确定删除${what}预算吗？此操作无法撤销。`,
    noBudgets: '没有适用于该用户的预算。',
    confirm: '确认',
  },
});

type Role = 'USER' | 'ADMIN';
type Period = 'DAY' | 'WEEK' | 'MONTH' | 'TOTAL';
const ROLES: Role[] = ['USER', 'ADMIN'];
const PERIODS: Period[] = ['DAY', 'WEEK', 'MONTH', 'TOTAL'];
const PAGE_SIZE = 25;

interface UserRow {
  id: string;
  email: string;
  displayName: string;
  role: Role;
  disabled: boolean;
  createdAt: string;
}

interface Budget {
  id: string;
  scope: 'GLOBAL' | 'USER';
  userId: string | null;
  period: Period;
  currency: string;
  limitMicros: string;
  spentMicros: string;
  reservedMicros: string;
  remainingMicros: string;
}

const USERS = gql`
  query UsersList($search: String, $first: Int, $after: String) {
    users(search: $search, first: $first, after: $after) {
      pageInfo { hasNextPage endCursor }
      nodes { id email displayName role disabled createdAt }
    }
  }
`;

const USER = gql`
  query UsersOne($id: ID!) {
    user(id: $id) { id email displayName role disabled createdAt }
  }
`;

const SET_ROLE = gql`
  mutation UsersSetRole($userId: ID!, $role: Role!) {
    setUserRole(userId: $userId, role: $role) { id role }
  }
`;

const DISABLE = gql`
  mutation UsersDisable($userId: ID!) {
    disableUser(userId: $userId) { id disabled }
  }
`;

const ENABLE = gql`
  mutation UsersEnable($userId: ID!) {
    enableUser(userId: $userId) { id disabled }
  }
`;

const CREATE = gql`
  mutation UsersCreate($input: CreateUserInput!) {
    createUser(input: $input) { id email }
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

function asApiError(e: unknown): ApiError {
  return e instanceof ApiError ? e : new ApiError(String(e), 'INTERNAL');
}

/** A yes/no question in a modal dialog. */
function Confirm({
  question,
  onConfirm,
  onClose,
  danger,
}: {
  question: string | null;
  onConfirm(): Promise<void>;
  onClose(): void;
  danger?: boolean;
}) {
  const t = useText(text);
  const c = useText(common);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError>();
  useEffect(() => {
    setError(undefined);
    setBusy(false);
  }, [question]);
  if (question == null) return null;
  const run = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await onConfirm();
      onClose();
    } catch (e) {
      setError(asApiError(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog open title={t.confirm} onClose={onClose}>
      <form onSubmit={run}>
        <p>{question}</p>
        <ErrorBox error={error} />
        <div className="dialog-actions">
          <button type="button" onClick={onClose}>
            {c.cancel}
          </button>
          <button type="submit" className={danger ? 'danger' : 'primary'} disabled={busy}>
            {t.confirm}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

export function Users({ route, session }: ViewProps) {
  const t = useText(text);
  const c = useText(common);
  const { locale } = useLang();
  const search = route.params.get('search') ?? '';
  const selectedId = route.path[1];
  const [draft, setDraft] = useState(search);
  useEffect(() => setDraft(search), [search]);
  const pager = usePager(search);
  const users = useQuery<{ users: { pageInfo: { hasNextPage: boolean; endCursor: string | null }; nodes: UserRow[] } }>(
    USERS,
    { search: search || undefined, first: PAGE_SIZE, after: pager.cursor },
  );
  const [notice, setNotice] = useState<string>();
  const [actionError, setActionError] = useState<ApiError>();
  const [creating, setCreating] = useState(false);
  const [toggle, setToggle] = useState<UserRow | null>(null);
  const [detailTick, setDetailTick] = useState(0);

  const link = (id?: string) => (id ? `/users/${encodeURIComponent(id)}` : '/users');

  const changeRole = async (user: UserRow, role: Role) => {
    setNotice(undefined);
    setActionError(undefined);
    try {
      await request(SET_ROLE, { userId: user.id, role });
      setNotice(t.roleChanged(user.displayName, t[role]));
    } catch (e) {
      setActionError(asApiError(e));
    }
    users.reload();
    setDetailTick((n) => n + 1);
  };

  const columns: Column<UserRow>[] = [
    {
      key: 'name',
      title: t.name,
      render: (u) => (
        <a href={href(link(u.id), { search })} aria-label={t.details(u.displayName)} aria-current={u.id === selectedId ? 'true' : undefined}>
          {u.displayName}
        </a>
      ),
    },
    { key: 'email', title: t.email, render: (u) => u.email },
    {
      key: 'role',
      title: t.role,
      render: (u) =>
        u.id === session.user.id ? (
          <span>
            {t[u.role]} <span className="muted">({t.you})</span>
          </span>
        ) : (
          <select value={u.role} aria-label={t.roleOf(u.displayName)} onChange={(e) => void changeRole(u, e.target.value as Role)}>
            {ROLES.map((r) => (
              <option key={r} value={r}>
                {t[r]}
              </option>
            ))}
          </select>
        ),
    },
    {
      key: 'status',
      title: t.status,
      render: (u) => <Badge tone={u.disabled ? 'bad' : 'ok'}>{u.disabled ? t.disabled : t.active}</Badge>,
    },
    { key: 'created', title: t.created, render: (u) => dateTime(u.createdAt, locale) },
    {
      key: 'actions',
      title: t.actions,
      render: (u) =>
        u.id === session.user.id ? null : (
          <button
            type="button"
            className={u.disabled ? undefined : 'danger'}
            aria-label={u.disabled ? t.enableOf(u.displayName) : t.disableOf(u.displayName)}
            onClick={() => {
              setNotice(undefined);
              setToggle(u);
            }}
          >
            {u.disabled ? t.enable : t.disable}
          </button>
        ),
    },
  ];

  return (
    <Page
      title={t.title}
      actions={
        <button type="button" className="primary" onClick={() => setCreating(true)}>
          {t.newUser}
        </button>
      }
    >
      <form
        className="row users-search"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          navigate(link(selectedId), { search: draft.trim() });
        }}
      >
        <Field label={t.searchLabel}>
          <input type="search" value={draft} onChange={(e) => setDraft(e.target.value)} autoComplete="off" />
        </Field>
        <button type="submit">{c.search}</button>
      </form>
      {notice && (
        <p className="notice" role="status">
          {notice}
        </p>
      )}
      <ErrorBox error={actionError} />
      <div className={selectedId ? 'users-split' : undefined}>
        <div>
          <ErrorBox error={users.error} onRetry={users.reload} />
          <Loading show={users.loading && !users.data} />
          {users.data && (
            <>
              <Table columns={columns} rows={users.data.users.nodes} rowKey={(u) => u.id} selected={selectedId} />
              <Pager pager={pager} hasNext={users.data.users.pageInfo.hasNextPage} endCursor={users.data.users.pageInfo.endCursor} />
            </>
          )}
        </div>
        {selectedId && (
          <UserDetail key={`${selectedId}:${detailTick}`} id={selectedId} onClose={() => navigate(link(), { search })} />
        )}
      </div>
      {creating && (
        <CreateUser
          open={creating}
          onClose={() => setCreating(false)}
          onCreated={(email) => {
            setCreating(false);
            setNotice(t.created_(email));
            users.reload();
          }}
        />
      )}
      <Confirm
        question={toggle ? (toggle.disabled ? t.confirmEnable(toggle.displayName) : t.confirmDisable(toggle.displayName)) : null}
        danger={toggle ? !toggle.disabled : false}
        onClose={() => setToggle(null)}
        onConfirm={async () => {
          if (!toggle) return;
          await request(toggle.disabled ? ENABLE : DISABLE, { userId: toggle.id });
          setNotice(toggle.disabled ? t.userEnabled(toggle.displayName) : t.userDisabled(toggle.displayName));
          users.reload();
          setDetailTick((n) => n + 1);
        }}
      />
    </Page>
  );
}

function CreateUser({ open, onClose, onCreated }: { open: boolean; onClose(): void; onCreated(email: string): void }) {
  const t = useText(text);
  const c = useText(common);
  const [form, setForm] = useState({ email: '', displayName: '', password: '', role: 'USER' as Role });
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError>();
  useEffect(() => {
    if (open) {
      setForm({ email: '', displayName: '', password: '', role: 'USER' });
      setError(undefined);
    }
  }, [open]);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const data = await request<{ createUser: { email: string } }>(CREATE, {
        input: { email: form.email.trim(), displayName: form.displayName.trim(), password: form.password, role: form.role },
      });
      onCreated(data.createUser.email);
    } catch (e) {
      setError(asApiError(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog open={open} title={t.createTitle} onClose={onClose}>
      <form onSubmit={submit} className="users-form">
        <Field label={t.email}>
          <input type="email" required value={form.email} onChange={(e) => setForm({ ...form, email: e.target.value })} autoComplete="off" />
        </Field>
        <Field label={t.displayName}>
          <input required value={form.displayName} onChange={(e) => setForm({ ...form, displayName: e.target.value })} autoComplete="off" />
        </Field>
        <Field label={t.password} hint={t.passwordHint}>
          <input
            type="password"
            required
            value={form.password}
            onChange={(e) => setForm({ ...form, password: e.target.value })}
            autoComplete="new-password"
          />
        </Field>
        <Field label={t.role}>
          <select value={form.role} onChange={(e) => setForm({ ...form, role: e.target.value as Role })}>
            {ROLES.map((r) => (
              <option key={r} value={r}>
                {t[r]}
              </option>
            ))}
          </select>
        </Field>
        <ErrorBox error={error} />
        <div className="dialog-actions">
          <button type="button" onClick={onClose}>
            {c.cancel}
          </button>
          <button type="submit" className="primary" disabled={busy}>
            {c.create}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

function Section({ id, title, children }: { id: string; title: string; children: ReactNode }) {
  return (
    <section aria-labelledby={id} className="users-section">
      <h3 id={id}>{title}</h3>
      {children}
    </section>
  );
}

function UserDetail({ id, onClose }: { id: string; onClose(): void }) {
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
          <Section id="users-limits-title" title={t.rateLimits}>
            <RateLimitsForm userId={u.id} />
          </Section>
          <Section id="users-budgets-title" title={t.budgets}>
            <Budgets userId={u.id} />
          </Section>
        </>
      )}
    </aside>
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
      setError(asApiError(e));
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

function Budgets({ userId }: { userId: string }) {
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
      setError(asApiError(e));
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
              <Meter budget={b} />
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

function Meter({ budget }: { budget: Budget }) {
  const limit = BigInt(budget.limitMicros);
  if (limit <= 0n) return null;
  // Widths in per-mille, from exact integers (no money in floating point).
  const share = (v: string) => Number((BigInt(v) * 1000n) / limit);
  const spent = Math.min(1000, share(budget.spentMicros));
  const reserved = Math.min(1000 - spent, share(budget.reservedMicros));
  return (
    <div className="meter" aria-hidden="true">
      <div className="meter-spent" style={{ width: `${spent / 10}%` }} />
      <div className="meter-reserved" style={{ width: `${reserved / 10}%` }} />
    </div>
  );
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
      setError(asApiError(e));
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
