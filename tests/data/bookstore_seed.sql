-- Stands in for `rails db:seed` in tests: what the shopapi's db/seeds.rb does, in SQL.
-- `Book.destroy_all` deletes every book first; then it creates books with random titles.
DELETE FROM books;
INSERT INTO books (title, description, price, image_url, created_at, updated_at) VALUES
  ('Seeded one', 'A seeded book.', 30.00, 'http://placehold.jp/50/19191a/fcfcfc/500x500.png', NOW(), NOW()),
  ('Seeded two', 'A seeded book.', 28.50, 'http://placehold.jp/52/425259/ffffff/500x500.png', NOW(), NOW()),
  ('Seeded three', 'A seeded book.', 34.25, 'http://placehold.jp/54/111112/d6d6d6/500x500.png', NOW(), NOW());
