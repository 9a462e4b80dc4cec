/**
 * Users (admin): search and page through accounts, change a role (never your own), disable or
 * enable an account (after a confirmation), create one; `#/users/<id>` opens a user's rate
 * limits and budgets beside the list. The search is kept in the query string.
 */
import { useEffect, useState } from 'react';
import type { ViewProps } from '../../App';
import { request, type ApiError, toApiError } from '../../api/client';
import { gql } from '../../api/gql';
import { useQuery } from '../../api/hooks';
import { common } from '../../i18n/common';
import { useLang, useText } from '../../i18n';
import { href, navigate } from '../../router';
import { Badge, ErrorBox, Field, Loading, Page, Pager, Table, usePager, type Column } from '../../ui/components';
import { dateTime } from '../../ui/format';
import { CreateUser } from './CreateUser';
import { UserDetail } from './UserDetail';
import { text } from './Users.text';
import { Confirm, ROLES, type Role, type UserRow } from './UsersShared';
import './Users.css';

const PAGE_SIZE = 25;

const USERS = gql`
  query UsersList($search: String, $first: Int, $after: String) {
    users(search: $search, first: $first, after: $after) {
      pageInfo { hasNextPage endCursor }
      nodes { id email displayName role disabled createdAt }
    }
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
      setActionError(toApiError(e));
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
