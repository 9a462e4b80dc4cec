/** Types, constants and the confirmation dialog shared by the Users page and its panels. */
import { useEffect, useState, type FormEvent } from 'react';
import { ApiError, toApiError } from '../../api/client';
import { useText } from '../../i18n';
import { common } from '../../i18n/common';
import { Dialog, ErrorBox } from '../../ui/components';
import { text } from './Users.text';

export type Role = 'USER' | 'ADMIN';
export type Period = 'DAY' | 'WEEK' | 'MONTH' | 'TOTAL';
export const ROLES: Role[] = ['USER', 'ADMIN'];
export const PERIODS: Period[] = ['DAY', 'WEEK', 'MONTH', 'TOTAL'];

export interface UserRow {
  id: string;
  email: string;
  displayName: string;
  role: Role;
  disabled: boolean;
  createdAt: string;
  mfaEnabled?: boolean;
  passwordChangeRequired?: boolean;
}

export interface Budget {
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


/** A yes/no question in a modal dialog. */
export function Confirm({
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
      setError(toApiError(e));
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

