DROP TABLE messages;
DROP TABLE ai_calls;
DROP TABLE conversations;
DROP TABLE prices;
