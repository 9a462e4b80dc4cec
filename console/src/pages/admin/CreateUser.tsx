/** The create-user dialog of the Users page. */
import { useEffect, useState, type FormEvent } from 'react';
import { request, type ApiError, toApiError } from '../../api/client';
import { gql } from '../../api/gql';
import { common } from '../../i18n/common';
import { useText } from '../../i18n';
import { Dialog, ErrorBox, Field } from '../../ui/components';
import { text } from './Users.text';
import { ROLES, type Role } from './UsersShared';

const CREATE = gql`
  mutation UsersCreate($input: CreateUserInput!) {
    createUser(input: $input) { id email }
  }
`;

export function CreateUser({ open, onClose, onCreated }: { open: boolean; onClose(): void; onCreated(email: string): void }) {
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
      setError(toApiError(e));
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
