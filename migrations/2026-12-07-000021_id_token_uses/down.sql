DROP TABLE auth.id_token_uses;
